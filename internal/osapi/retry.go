package osapi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Retrier retries transient failures with exponential backoff and jitter,
// waiting at least what a Retry-After header asked for.
type Retrier struct {
	// Retries is how many times a failed call is tried again (0: never).
	Retries int
	// Base is the first delay; each retry doubles it, up to Max.
	Base time.Duration
	// Max caps one delay, Retry-After included.
	Max time.Duration
}

// Delay is the wait before retry number n (1 for the first retry) after err:
// a random duration between half and all of min(Max, Base·2^(n-1)) ("equal
// jitter", so that clients that failed together do not come back together),
// raised to the Retry-After the service sent, and capped at Max.
func (r Retrier) Delay(n int, err error) time.Duration {
	d := r.Base
	for i := 1; i < n && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	if d > 1 {
		half := d / 2
		d = half + rand.N(d-half+1) //nolint:gosec // jitter, not a secret
	}
	if ae, ok := AsAPIError(err); ok && ae.RetryAfter > d {
		d = ae.RetryAfter
	}
	return min(d, r.Max)
}

// Do calls fn until it succeeds, fails with an error that retryable rejects,
// runs out of retries, or ctx is done. retryable nil means IsTransient. The
// last error is returned, with the number of attempts when there was more
// than one.
func (r Retrier) Do(ctx context.Context, retryable func(error) bool, fn func(ctx context.Context) error) error {
	if retryable == nil {
		retryable = IsTransient
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return err
		}
		if attempt > r.Retries {
			if attempt > 1 {
				return fmt.Errorf("%w (gave up after %d attempts)", Clean(err), attempt)
			}
			return err
		}
		if serr := Sleep(ctx, r.Delay(attempt, err)); serr != nil {
			return fmt.Errorf("%w (stopped retrying: %w)", Clean(err), serr)
		}
	}
}

// Sleep waits for d or until ctx is done (its error is returned then).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
