package mrdpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
)

// ErrStalled is wrapped by errors for a range, an open or a metadata call
// that made no progress (not one byte, no answer) for the stall timeout:
// a server that died, hangs, or cannot be reached. It is distinct from
// context.DeadlineExceeded, which stays the caller's own deadline.
var ErrStalled = errors.New("mrdpool: no progress")

// errStallCause is the cause of the contexts made by WithStallTimeout, so
// that a stall is told apart from the caller's own deadline.
var errStallCause = errors.New("mrdpool: stall timeout")

// WithStallTimeout returns ctx bounded by the stall timeout d, for a call
// that delivers nothing until it ends (an open, a stat, a listing page).
// d <= 0 means no bound. Pass the call's error to WrapStalled with the
// returned context.
func WithStallTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, errStallCause)
}

// WrapStalled turns err into an error wrapping ErrStalled when ctx (made by
// WithStallTimeout) ended through its stall timeout rather than through the
// caller's context; the original error is kept in the message. Other errors
// are returned as they are.
func WrapStalled(ctx context.Context, err error, what string) error {
	if err == nil || errors.Is(err, ErrStalled) || context.Cause(ctx) != errStallCause {
		return err
	}
	return fmt.Errorf("%w: %s: no answer within the stall timeout (last error: %v)", ErrStalled, what, err)
}

// RetryOptions are the storage client's retry settings that bound its own
// retries: idempotent calls only, a short backoff, and at most maxDuration
// of retrying (the storage client otherwise retries "connection refused"
// and UNAVAILABLE for ever). Each retry the client decides on is logged at
// Debug on logger (nil: silent). maxDuration <= 0 leaves the duration
// unbounded.
//
// gcsfs sets them on the clients it builds (Client.SetRetry) and on each
// object handle it reads through (ObjectHandle.Retryer), so clients the
// caller passes in are bounded too without being changed.
func RetryOptions(maxDuration time.Duration, logger *slog.Logger) []storage.RetryOption {
	opts := []storage.RetryOption{
		storage.WithPolicy(storage.RetryIdempotent),
		storage.WithBackoff(gax.Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}),
		storage.WithErrorFuncWithContext(func(err error, rc *storage.RetryContext) bool {
			retry := storage.ShouldRetry(err)
			if retry && logger != nil {
				attrs := []any{"err", err}
				if rc != nil {
					attrs = append(attrs, "object", rc.Object, "op", rc.Operation, "attempt", rc.Attempt)
				}
				logger.Debug("storage client retries", attrs...)
			}
			return retry
		}),
	}
	if maxDuration > 0 {
		opts = append(opts, storage.WithMaxRetryDuration(maxDuration))
	}
	return opts
}
