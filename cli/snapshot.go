package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const snapshotUsage = `usage: warren snapshot save FILE | warren snapshot restore FILE`

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, snapshotUsage)
		return ExitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("snapshot "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := clientFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return ExitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, snapshotUsage)
		return ExitUsage
	}
	file := fs.Arg(0)
	c := addr.client()
	var err error
	switch sub {
	case "save":
		err = snapshotSave(ctx, c, file)
	case "restore":
		err = snapshotRestore(ctx, c, file)
	default:
		fmt.Fprintln(stderr, snapshotUsage)
		return ExitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "warren snapshot %s: %v\n", sub, err)
		return ExitError
	}
	fmt.Fprintf(stderr, "snapshot %s: %s\n", map[string]string{"save": "saved to", "restore": "restored from"}[sub], file)
	return ExitOK
}

// snapshotSave writes the snapshot to a temp file beside FILE, syncs it and
// renames it into place, so FILE is never a partial snapshot.
func snapshotSave(ctx context.Context, c *httpClient, file string) error {
	f, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := c.do(ctx, "GET", "/v1/snapshot", nil, nil, f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

func snapshotRestore(ctx context.Context, c *httpClient, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.do(ctx, "PUT", "/v1/snapshot", nil, f, nil)
}
