package stream

import (
	"context"
	"sync"
)

// Drain waits for wg (the connections a server is closing gently) until
// ctx ends; then it calls abort, which cuts what is left, and waits for
// those to finish too. It returns ctx's error when it had to abort.
func Drain(ctx context.Context, wg *sync.WaitGroup, abort func()) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		abort()
		<-done
		return ctx.Err()
	}
}
