package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/warren-mesh/warren/config"
	"github.com/warren-mesh/warren/httpapi"
	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/internal/task"
	"github.com/warren-mesh/warren/server"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runDaemon(ctx, config.ModeDev, args, stderr)
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runDaemon(ctx, config.ModeServer, args, stderr)
}

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: warren validate DIR")
		return ExitUsage
	}
	if _, err := config.LoadDir(args[0]); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitError
	}
	fmt.Fprintf(stdout, "configuration in %s is valid\n", args[0])
	return ExitOK
}

// runDaemon loads the config for mode and runs until ctx is done.
func runDaemon(ctx context.Context, mode config.Mode, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(mode.String(), flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "warren %s: unexpected argument %q\n", mode, fs.Arg(0))
		return ExitUsage
	}
	cfg, err := config.Load(mode, flags)
	if err != nil {
		fmt.Fprintf(stderr, "warren %s: config: %v\n", mode, err)
		return ExitUsage
	}
	level, _ := logging.ParseLevel(cfg.LogLevel)
	log := logging.New(stderr, level)
	if mode == config.ModeDev {
		dir, err := os.MkdirTemp("", "warren-dev-")
		if err != nil {
			log.Error("create dev data dir", "err", err)
			return ExitError
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	if err := runProcess(ctx, cfg, log); err != nil {
		log.Error("warren stopped with an error", "err", err)
		return ExitError
	}
	return ExitOK
}

// runProcess builds the server and the HTTP API from cfg and runs them
// under one context. Shutdown order: HTTP stops taking requests first, then
// the server stops.
func runProcess(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	httpAddr := net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.HTTP))
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", httpAddr, err)
	}
	defer ln.Close()
	srv, err := server.New(server.Config{
		NodeName:        cfg.NodeName,
		Datacenter:      cfg.Datacenter,
		DataDir:         cfg.DataDir,
		BindAddr:        net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Ports.Server)),
		AdvertiseAddr:   net.JoinHostPort(cfg.AdvertiseAddr, strconv.Itoa(cfg.Ports.Server)),
		BootstrapExpect: cfg.BootstrapExpect,
		RetryJoin:       cfg.RetryJoin,
		RetryInterval:   cfg.RetryInterval,
		Version:         Version,
		Logger:          log.With("subsystem", "server"),
	})
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	handler := httpapi.New(httpapi.Config{
		Backend:    srv,
		Logger:     log.With("subsystem", "http"),
		Datacenter: cfg.Datacenter,
	})
	log.Info("warren running", "mode", cfg.Mode.String(), "node", cfg.NodeName, "datacenter", cfg.Datacenter,
		"http", "http://"+ln.Addr().String(), "rpc", srv.Addr(), "data_dir", cfg.DataDir, "version", Version)

	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	serverDone := make(chan error, 1)
	go func() { serverDone <- srv.Run(srvCtx) }()

	err = task.Run(ctx,
		func(ctx context.Context) error { return serveHTTP(ctx, ln, handler, log) },
		func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return nil
			case err := <-serverDone:
				serverDone <- err
				if err == nil {
					return errors.New("server stopped unexpectedly")
				}
				return err
			}
		},
	)
	stopServer()
	if serr := <-serverDone; serr != nil && err == nil {
		err = serr
	}
	return err
}

// serveHTTP serves until ctx is done, then stops taking connections and
// gives requests in flight a few seconds (blocking queries are cut).
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          logging.StdLogger(log, slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errCh := make(chan error, 1)
	go func() { errCh <- hs.Serve(ln) }()
	select {
	case err := <-errCh:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	<-errCh
	return nil
}
