// Package task runs a process's long-lived loops under one context: the
// first loop to fail cancels the others, a panic becomes an error, and
// context cancellation is a clean exit. Any package may import it.
package task

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
)

// Func is a long-lived loop. It returns when ctx is done or it fails.
type Func func(ctx context.Context) error

// Run runs every task until all have returned. The first task to return a
// non-nil error (other than context.Canceled) cancels the rest; Run returns
// that error. A task that returns nil before ctx is done does not stop the
// others.
func Run(ctx context.Context, tasks ...Func) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for _, t := range tasks {
		wg.Go(func() {
			err := runOne(ctx, t)
			if err != nil && !errors.Is(err, context.Canceled) {
				once.Do(func() {
					firstErr = err
					cancel()
				})
			}
		})
	}
	wg.Wait()
	return firstErr
}

func runOne(ctx context.Context, t Func) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return t(ctx)
}
