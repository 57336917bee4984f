package mrdpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
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
// failed attempt) on a possibly new downloader, up to Options.Retries times,
// and only while bytes keep coming: once none has arrived for
// Options.StallTimeout (counted across attempts, getting a downloader
// included), ReadAt fails with an error wrapping ErrStalled.
//
// If ctx ends, ReadAt returns ctx.Err() at once and p is written no more,
// although the downloader may still be fetching the range.
func (p *Pool) ReadAt(ctx context.Context, b []byte, off int64) (int, error) {
	return p.readAt(ctx, b, off, readOpts{})
}

// ReadAtProgress is ReadAt that also reports, while the range is in
// flight, how much of b has arrived: progress(k, final) means b[:k] holds
// bytes the server sent, and final that they are the object's bytes and
// will not be written again. It is called from the downloader's goroutine,
// never after ReadAtProgress returns. A backend whose bytes are final
// once written (BlobBackend: ranged HTTP reads carry no checksum) reports
// them final, with a growing k. A multi-range downloader checks a
// checksum after it has written the bytes it covers, so its reports are
// not final (and k falls back to where the failed attempt started when a
// range is retried after a bad checksum): its bytes are final only once
// ReadAtProgress returns them. prefetch.Engine uses final reports to let
// reads at a window's start go on before the window's parts are complete,
// and the others to ask for the next window while the bytes of this one
// are still arriving.
func (p *Pool) ReadAtProgress(ctx context.Context, b []byte, off int64, progress func(k int64, final bool)) (int, error) {
	_, final := p.backend.(finalWrites)
	return p.readAt(ctx, b, off, readOpts{progress: func(k int64) { progress(k, final) }})
}

// finalWrites is a Backend whose downloaders write only final bytes: no
// checksum is checked after they are written, so a retry never writes them
// again (ranged HTTP reads carry none).
type finalWrites interface{ writesFinal() }

// readOpts are how a read differs from ReadAt.
type readOpts struct {
	// firstByte, when set, is called once the first byte of the read has
	// landed in b (from any goroutine; it must be quick).
	firstByte func()
	// share makes the read share a busy downloader of a shareable backend
	// rather than open one: a hedge must not wait an open's round trip.
	share bool
	// progress, when set, is told of the prefix of b that has arrived as
	// it grows (ReadAtProgress).
	progress func(k int64)
}

// readAt is ReadAt with ro.
func (p *Pool) readAt(ctx context.Context, b []byte, off int64, ro readOpts) (int, error) {
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
	stall := p.opts.StallTimeout
	lastProgress := time.Now()
	var done int64 // valid prefix of b
	for attempt := 0; ; attempt++ {
		att := ro // this attempt's: its progress is past the valid prefix
		if ro.progress != nil {
			base := done
			att.progress = func(k int64) { ro.progress(base + k) }
		}
		got, last, err := p.readOnce(ctx, b[done:], off+done, lastProgress, att)
		if err == nil && got == n-done {
			p.bytes.Add(n - done)
			return len(b), nil
		}
		if err == nil {
			err = fmt.Errorf("%w: got %d of %d bytes at offset %d", ErrShortRange, done+got, n, off)
		}
		if !errors.Is(err, ErrChecksum) && got > 0 {
			p.bytes.Add(got)
			done += got
			lastProgress = last
		}
		if ctx.Err() != nil {
			return int(done), ctx.Err()
		}
		if !retryable(ctx, err) || attempt >= p.opts.Retries {
			p.giveUp(off+done, attempt, err)
			return int(done), err
		}
		if stall > 0 && time.Since(lastProgress) >= stall {
			err = fmt.Errorf("%w: %s: no byte for %v at offset %d after %d attempts: %w", ErrStalled, p.opts.Object, stall, off+done, attempt+1, err)
			p.giveUp(off+done, attempt, err)
			return int(done), err
		}
		p.retries.Add(1)
		p.opts.Logger.Debug("mrdpool: range retried", "object", p.opts.Object, "offset", off+done, "attempt", attempt+1, "err", err)
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

func (p *Pool) giveUp(off int64, attempt int, err error) {
	if !errors.Is(err, fs.ErrClosed) {
		p.opts.Logger.Warn("mrdpool: range failed", "object", p.opts.Object, "offset", off, "attempt", attempt+1, "err", err)
	}
}

// readOnce adds one range for b at off and waits for it (telling
// ro.progress, when set, of the bytes of b as they land): until it ends, ctx
// ends, its downloader is dropped, or no byte has arrived for the stall
// timeout since the read's last progress at since (then the downloader is
// replaced); getting a downloader is bounded by the same instant. It
// returns how many bytes landed in b, in order from its start, and when
// the last of them arrived.
func (p *Pool) readOnce(ctx context.Context, b []byte, off int64, since time.Time, ro readOpts) (int64, time.Time, error) {
	held, err := p.acquireBy(ctx, since, ro.share)
	if err != nil {
		return 0, since, err
	}
	w := newSliceWriter(b, since, &held.e.progress, &p.progress)
	w.firstByte = ro.firstByte
	w.report = ro.progress
	start := time.Now()
	ret := func(err error) (int64, time.Time, error) {
		if err == nil && p.opts.Observe != nil {
			if first := w.first.Load(); first > 0 {
				end := time.Now()
				p.opts.Observe(RangeTiming{TTFB: time.Unix(0, first).Sub(start), Bytes: w.written(),
					Transfer: end.Sub(time.Unix(0, first)), Sharing: held.sharing})
			}
		}
		return w.written(), w.lastWrite(), err
	}
	done := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	p.ranges.Add(1)
	held.Downloader().Add(rctx, w, off, int64(len(b)), func(err error) { done <- err })
	stall := p.opts.StallTimeout
	var timer *time.Timer
	var timeout <-chan time.Time // nil: no stall bound
	if stall > 0 {
		timer = time.NewTimer(time.Until(since.Add(stall)))
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		select {
		case err := <-done:
			cancel()
			held.Release()
			return ret(err)
		case <-ctx.Done():
			p.abandon(w, cancel, held, done)
			return ret(ctx.Err())
		case <-held.e.gone:
			return ret(p.lost(w, cancel, held, done))
		case <-timeout:
			if idle := time.Since(w.lastWrite()); idle < stall {
				timer.Reset(stall - idle)
				continue
			}
			p.abandon(w, cancel, held, done)
			p.dropStalled(held.e)
			at := off + w.written()
			p.opts.Logger.Warn("mrdpool: range stalled; downloader replaced", "object", p.opts.Object, "offset", at, "stall", stall)
			return ret(fmt.Errorf("%w: %s: no byte for %v at offset %d", ErrStalled, p.opts.Object, stall, at))
		}
	}
}

// acquireBy is acquire bounded by the stall timeout counted from since, or
// from the pool's last progress when later: waiting for a busy pool whose
// downloaders deliver bytes is not a stall, waiting on a dead server is.
func (p *Pool) acquireBy(ctx context.Context, since time.Time, share bool) (*lease, error) {
	stall := p.opts.StallTimeout
	if stall <= 0 {
		return p.acquireFor(ctx, share)
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex // t is set before its function may use it
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(time.Until(since.Add(stall)), func() {
		mu.Lock()
		defer mu.Unlock()
		last := time.Unix(0, max(since.UnixNano(), p.progress.Load()))
		if idle := time.Since(last); idle < stall {
			t.Reset(stall - idle)
			return
		}
		cancel(errStallCause)
	})
	mu.Unlock()
	defer t.Stop()
	l, err := p.acquireFor(actx, share)
	return l, WrapStalled(actx, err, "get a downloader for "+p.opts.Object)
}

// lost ends a range whose downloader the pool dropped while it was in
// flight: the pool closed (fs.ErrClosed) or another range found the
// downloader broken or stalled (a retryable error).
func (p *Pool) lost(w *sliceWriter, cancel context.CancelFunc, held *lease, done chan error) error {
	p.abandon(w, cancel, held, done)
	if p.isClosed() {
		return errClosed()
	}
	return fmt.Errorf("mrdpool: %s: downloader replaced while a range was in flight", p.opts.Object)
}

// abandon cuts a range in flight off from the caller's slice. The downloader
// may go on writing, so the lease is given back only when the range has
// ended or the downloader is dropped (a real MRD never calls back for a
// range that stalls or was in flight when it was closed), so that a
// non-shareable downloader never carries two ranges.
func (p *Pool) abandon(w *sliceWriter, cancel context.CancelFunc, held *lease, done chan error) {
	cancel() // first: a ReadFrom blocked in Read holds w's lock
	w.detach()
	go func() {
		select {
		case <-done:
		case <-held.e.gone:
		}
		held.Release()
	}()
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// retryable reports whether a failed range is worth resuming.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	for _, perm := range []error{context.Canceled, context.DeadlineExceeded, fs.ErrClosed, fs.ErrNotExist, ErrRange, ErrObjectChanged, ErrStalled, errOverflow} {
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
	reading  chan struct{} // non-nil while ReadFrom is in a Read; closed after

	last       atomic.Int64  // unix nanos of the last byte (or the start)
	first      atomic.Int64  // unix nanos of the first byte; 0 before it
	downloader *atomic.Int64 // the downloader's last byte to any range
	pool       *atomic.Int64 // the pool's last byte to any range
	firstByte  func()        // nil, or called at the first byte

	// report, when set, is told the length of the slice's prefix written
	// so far, under mu, each time it grows, and never once detached.
	report func(n int64)
}

// newSliceWriter returns a writer into b whose last progress is since.
// Bytes it receives also count as progress of their downloader.
func newSliceWriter(b []byte, since time.Time, downloader, pool *atomic.Int64) *sliceWriter {
	w := &sliceWriter{b: b, downloader: downloader, pool: pool}
	w.last.Store(since.UnixNano())
	return w
}

// progressed records that bytes arrived now.
func (w *sliceWriter) progressed() {
	now := time.Now().UnixNano()
	w.last.Store(now)
	if w.first.CompareAndSwap(0, now) && w.firstByte != nil {
		w.firstByte()
	}
	if w.downloader != nil {
		w.downloader.Store(now)
		w.pool.Store(now)
	}
}

// lastWrite is when the range last made progress: its own last byte, or
// the last byte its downloader delivered to any range. A range queued
// behind others on a busy shared downloader is waiting, not stalled.
func (w *sliceWriter) lastWrite() time.Time {
	last := w.last.Load()
	if w.downloader != nil {
		last = max(last, w.downloader.Load())
	}
	return time.Unix(0, last)
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.detached {
		return len(p), nil
	}
	k := copy(w.b[w.n:], p)
	w.n += k
	if k > 0 {
		w.progressed()
		if w.report != nil {
			w.report(int64(w.n))
		}
	}
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

// detach cuts the writer off from the slice. It waits for a ReadFrom Read
// in flight, which may be writing into the slice: cancel the range's
// context first, so that wait is short.
func (w *sliceWriter) detach() {
	w.mu.Lock()
	w.detached = true
	reading := w.reading
	w.mu.Unlock()
	if reading != nil {
		<-reading
	}
}

// ReadFrom reads r straight into the slice, with no intermediate buffer
// (blob.Reader.WriteTo and io.Copy use it). The lock is not held across a
// Read (network I/O); w.reading tells detach that one is in flight.
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
		dst := w.b[w.n:min(len(w.b), w.n+1<<20)]
		reading := make(chan struct{})
		w.reading = reading
		w.mu.Unlock()
		k, err := r.Read(dst)
		w.mu.Lock()
		w.n += k
		w.reading = nil
		if k > 0 && w.report != nil && !w.detached {
			w.report(int64(w.n))
		}
		w.mu.Unlock()
		close(reading)
		if k > 0 {
			w.progressed()
		}
		total += int64(k)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
