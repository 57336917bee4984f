package gcsfs

import (
	"errors"
	"strings"

	"github.com/zonalread/zonalread/mrdpool"
)

// gcsfs's own sentinel errors. Each wraps the lower package's sentinel for
// the same condition, and every error gcsfs returns for that condition
// wraps both, so errors.Is matches it with either: errors.Is(err,
// ErrStalled) and errors.Is(err, mrdpool.ErrStalled) are both true, and so
// is errors.Is(ErrStalled, mrdpool.ErrStalled). The message names gcsfs.
var (
	// ErrObjectChanged is wrapped by errors for reads of an object that was
	// overwritten or deleted after its File was opened.
	ErrObjectChanged error = &sentinel{"gcsfs: object changed since it was opened", mrdpool.ErrObjectChanged}
	// ErrStalled is wrapped by errors for a read, open, stat or listing that
	// made no progress for Options.StallTimeout: a server that died, hangs
	// or cannot be reached.
	ErrStalled error = &sentinel{"gcsfs: no progress", mrdpool.ErrStalled}
	// ErrShortRange is wrapped by errors for a range that ended before all
	// its bytes arrived, after Options.Retries resumptions.
	ErrShortRange error = &sentinel{"gcsfs: range ended early", mrdpool.ErrShortRange}
	// ErrChecksum is wrapped by errors for a range whose data failed its
	// checksum on every attempt (Options.Retries resumptions).
	ErrChecksum error = &sentinel{"gcsfs: checksum mismatch", mrdpool.ErrChecksum}
)

// sentinels are gcsfs's sentinels that stand for lower ones, in the order
// an error's message names them.
var sentinels = []*sentinel{
	ErrObjectChanged.(*sentinel), ErrStalled.(*sentinel), ErrShortRange.(*sentinel), ErrChecksum.(*sentinel),
}

// sentinel is a gcsfs error that stands for a lower package's one.
type sentinel struct {
	msg   string
	lower error
}

func (s *sentinel) Error() string { return s.msg }
func (s *sentinel) Unwrap() error { return s.lower }

// ownedError is an error from a lower package seen at gcsfs's boundary: it
// wraps gcsfs's sentinels for the lower ones in its chain, and the chain
// itself.
type ownedError struct {
	err error
	own []*sentinel
}

// Error is err's message with each lower sentinel's text replaced by
// gcsfs's ("mrdpool: no progress: ..." reads "gcsfs: no progress: ...").
func (e *ownedError) Error() string {
	msg := e.err.Error()
	for _, s := range e.own {
		msg = strings.ReplaceAll(msg, s.lower.Error(), s.msg)
	}
	return msg
}

func (e *ownedError) Unwrap() []error {
	errs := make([]error, 0, len(e.own)+1)
	for _, s := range e.own {
		errs = append(errs, s)
	}
	return append(errs, e.err)
}

// own returns err with gcsfs's sentinels wrapped around the lower ones it
// wraps, keeping its chain; errors with none (or owned already) are
// returned as they are. Every error gcsfs returns passes through it
// (pathErr, boundErr).
func own(err error) error {
	if err == nil {
		return nil
	}
	var hit []*sentinel
	for _, s := range sentinels {
		if errors.Is(err, s.lower) && !errors.Is(err, s) {
			hit = append(hit, s)
		}
	}
	if len(hit) == 0 {
		return err
	}
	return &ownedError{err: err, own: hit}
}
