// Command packaging builds Warren's .deb and .rpm packages with nfpm used as
// a library (no downloaded tools):
//
//	go run ./packaging -version 1.2.3 -arch amd64 -bin bin/linux_amd64/warren -out dist/
//
// It writes warren_VERSION_ARCH.deb and warren-VERSION.RPMARCH.rpm. The
// package layout, the maintainer scripts and the version rules are in
// package.go. Nothing in the module imports it; make packages runs it.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o options
	flag.StringVar(&o.Version, "version", "", "version, as `git describe --tags --always --dirty` prints it (required)")
	flag.StringVar(&o.Arch, "arch", "amd64", "GOARCH of the binary: amd64 or arm64")
	flag.StringVar(&o.Binary, "bin", "", "the warren binary to package (default bin/linux_ARCH/warren)")
	flag.StringVar(&o.Out, "out", "dist", "directory to write the packages to")
	flag.StringVar(&o.Root, "root", ".", "the repository root (systemd/ and packaging/ are read from it)")
	flag.Parse()
	if flag.NArg() > 0 || o.Version == "" {
		fmt.Fprintln(os.Stderr, "usage: packaging -version V [-arch amd64|arm64] [-bin PATH] [-out DIR] [-root DIR]")
		os.Exit(2)
	}
	if o.Binary == "" {
		o.Binary = fmt.Sprintf("bin/linux_%s/warren", o.Arch)
	}
	paths, err := build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
}
