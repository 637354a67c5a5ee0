package task

import (
	"context"
	"errors"
	"testing"
)

func TestFirstErrorCancelsOthers(t *testing.T) {
	boom := errors.New("boom")
	err := Run(context.Background(),
		func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		func(ctx context.Context) error { return boom },
	)
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
}

func TestPanicBecomesError(t *testing.T) {
	err := Run(context.Background(), func(ctx context.Context) error { panic("oops") })
	if err == nil {
		t.Fatal("Run = nil, want the panic as an error")
	}
}

func TestCancelIsCleanExit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Run(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}
