package mrdpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/zonalread/zonalread/internal/byterange"
)

// ErrChecksum is wrapped by a Downloader's error for a range whose data
// failed its checksum. Bytes of that attempt are not trusted: ReadAt
// fetches them again.
var ErrChecksum = errors.New("mrdpool: checksum mismatch")

// ReadAt fills p with the object's bytes at off, through a downloader from
// the pool, and returns len(p) or the length of the valid prefix and an
// error. The range is checked against the object's size first: one that
// does not fit fails with an error wrapping ErrRange and reaches no
// downloader. A range that fails with a transient error is resumed from its
// first missing byte (or, after a checksum failure, from the start of the
// failed attempt) on a possibly new downloader, up to Options.Retries times.
//
// If ctx ends, ReadAt returns ctx.Err() at once and p is written no more,
// although the downloader may still be fetching the range.
func (p *Pool) ReadAt(ctx context.Context, b []byte, off int64) (int, error) {
	n := int64(len(b))
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrRange, off)
	}
	if err := ctx.Err(); err != nil {
		return 0, err // fetch nothing for a caller that has gone
	}
	info, err := p.Info(ctx)
	if err != nil {
		return 0, err
	}
	if !byterange.Within(off, n, info.Size) {
		return 0, fmt.Errorf("%w: %d bytes at %d of a %d-byte object", ErrRange, n, off, info.Size)
	}
	if n == 0 {
		return 0, nil
	}
	backoff := p.opts.RetryBackoff
	var done int64 // valid prefix of b
	for attempt := 0; ; attempt++ {
		got, err := p.readOnce(ctx, b[done:], off+done)
		if err == nil && got == n-done {
			p.bytes.Add(n - done)
			return len(b), nil
		}
		if err == nil {
			err = fmt.Errorf("%w: got %d of %d bytes at offset %d", ErrShortRange, done+got, n, off)
		}
		if !errors.Is(err, ErrChecksum) {
			p.bytes.Add(got)
			done += got
		}
		if !retryable(ctx, err) || attempt >= p.opts.Retries {
			return int(done), err
		}
		p.retries.Add(1)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return int(done), ctx.Err()
		}
		backoff *= 2
	}
}

// readOnce adds one range for b at off and waits for it. It returns how
// many bytes landed in b, in order from its start.
func (p *Pool) readOnce(ctx context.Context, b []byte, off int64) (int64, error) {
	lease, err := p.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	w := &sliceWriter{b: b}
	done := make(chan error, 1)
	p.ranges.Add(1)
	lease.Downloader().Add(ctx, w, off, int64(len(b)), func(err error) { done <- err })
	select {
	case err := <-done:
		lease.Release()
		return w.written(), err
	case <-ctx.Done():
		// The downloader may go on writing: cut it off from b, and give the
		// lease back only when the range has ended so a non-shareable
		// downloader never carries two ranges. A real MRD never calls back
		// for a range that stalls or that was in flight when it was closed,
		// so the pool's Close ends the wait too.
		w.detach()
		go func() {
			select {
			case <-done:
			case <-p.closing:
			}
			lease.Release()
		}()
		return w.written(), ctx.Err()
	}
}

// retryable reports whether a failed range is worth resuming.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	for _, perm := range []error{context.Canceled, context.DeadlineExceeded, fs.ErrClosed, fs.ErrNotExist, ErrRange, ErrObjectChanged, errOverflow} {
		if errors.Is(err, perm) {
			return false
		}
	}
	return true
}

var errOverflow = errors.New("mrdpool: downloader sent more bytes than the range holds")

// sliceWriter is the io.Writer a downloader fills: a memmove into the
// caller's slice that refuses bytes past its end and, once detached, drops
// everything so a late downloader never touches memory the caller reused.
type sliceWriter struct {
	mu       sync.Mutex
	b        []byte
	n        int
	detached bool
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.detached {
		return len(p), nil
	}
	k := copy(w.b[w.n:], p)
	w.n += k
	if k < len(p) {
		return k, errOverflow
	}
	return k, nil
}

func (w *sliceWriter) written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(w.n)
}

func (w *sliceWriter) detach() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.detached = true
}

// ReadFrom reads r straight into the slice, with no intermediate buffer
// (blob.Reader.WriteTo and io.Copy use it). The lock is held across each
// Read so that detach waits for a Read in flight; the reader's context is
// cancelled along with the caller's, so that wait is short.
func (w *sliceWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		w.mu.Lock()
		if w.detached {
			w.mu.Unlock()
			return total, nil
		}
		if w.n == len(w.b) {
			w.mu.Unlock()
			var one [1]byte
			k, err := io.ReadFull(r, one[:])
			if k > 0 {
				return total, errOverflow
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return total, nil
			}
			return total, err
		}
		k, err := r.Read(w.b[w.n:min(len(w.b), w.n+1<<20)])
		w.n += k
		w.mu.Unlock()
		total += int64(k)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
