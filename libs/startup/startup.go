// Package startup waits for a service's dependencies at start-up. A service started next to
// a database that is still coming up (a deploy, a node reboot, a Postgres restart) waits for
// it instead of exiting: under Kubernetes every exit grows the CrashLoopBackOff delay, up to
// five minutes of downtime after a blip of seconds.
package startup

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// permanentError marks an error that waiting will not cure (a wrong password, a missing
// database): Wait returns it at once.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so Wait stops trying.
func Permanent(err error) error { return permanentError{err} }

// Wait calls try until it succeeds, ctx ends or limit has passed since the first call,
// backing off from 200 ms to 2 s between calls. With limit 0 try runs once; an error wrapped by Permanent ends the wait at once. The error names what was awaited and for how long.
func Wait(ctx context.Context, limit time.Duration, what string, try func(context.Context) error) error {
	start := time.Now()
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
		left := limit - time.Since(start)
		if left <= 0 {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("%s not reachable after %d attempts in %s: %w", what, attempt, time.Since(start).Round(time.Millisecond), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(min(backoff, left)):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
