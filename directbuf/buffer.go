// Package directbuf provides preallocated byte buffers that concurrent
// fetches write in place, and a Pool that recycles them under a byte budget.
//
// A Buffer is one []byte allocated once at its final size. Fetches of
// disjoint ranges write straight into it (WriteAt, or a fetch that fills a
// range of Bytes in place and then calls Commit), readers wait for exactly
// the bytes they need (Wait), and the assembled object is the buffer itself
// (Bytes): no second copy, no per-chunk allocation, no append growth.
//
//	object:  [0 ............................................. size)
//	fetch 1: [0 ....... a)            written in place by goroutine 1
//	fetch 2:            [a ...... b)  written in place by goroutine 2
//	fetch 3:                     [b ....... size)
//	Wait(ctx, x, n) returns as soon as [x, x+n) is committed (or failed)
//
// Misuse panics (writing outside the buffer, releasing twice, using a
// released buffer); runtime conditions (a fetch that failed, a cancelled
// context) are errors.
package directbuf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zonalread/zonalread/internal/byterange"
)

// errOverflow is returned by a section's Write when a source sends more bytes
// than the section has room for.
var errOverflow = errors.New("directbuf: write past the end of the section")

// Buffer is a fixed-size byte slice that concurrent writers fill in disjoint
// ranges. The zero value is not usable; get one from New or Pool.Get.
type Buffer struct {
	data []byte
	pool *Pool // nil when not pooled
	cap  int64 // weight held in the pool's budget: its block's size
	slab *slab // the slab its block is carved from; nil for a standalone buffer
	boff int64 // the block's offset in slab

	mu       sync.Mutex
	written  rangeSet
	failed   []failure
	changed  chan struct{} // closed and replaced when written/failed grows and someone waits
	waiters  int           // goroutines blocked in Wait on changed
	released bool
}

type failure struct {
	off, end int64
	err      error
}

// New returns an unpooled Buffer of exactly size bytes.
// It panics if size is negative.
func New(size int) *Buffer {
	if size < 0 {
		panic("directbuf: negative size")
	}
	return &Buffer{data: make([]byte, size), changed: make(chan struct{})}
}

// Len returns the size of the buffer.
func (b *Buffer) Len() int { return len(b.data) }

// Bytes returns the buffer's memory, without a copy. Bytes that have not been
// written hold unspecified data; use Wait before reading a range. The slice
// must not be used after Release.
func (b *Buffer) Bytes() []byte {
	b.checkLive()
	return b.data
}

func (b *Buffer) checkLive() {
	b.mu.Lock()
	r := b.released
	b.mu.Unlock()
	if r {
		panic("directbuf: use of released Buffer")
	}
}

func (b *Buffer) checkRange(off, n int64) {
	if !byterange.Within(off, n, int64(len(b.data))) {
		panic(fmt.Sprintf("directbuf: range of %d bytes at %d outside buffer of %d bytes", n, off, len(b.data)))
	}
}

// WriteAt copies p into the buffer at off and marks that range written. It
// is safe to call concurrently for disjoint ranges. It panics if the range
// lies outside the buffer; it never returns an error.
func (b *Buffer) WriteAt(p []byte, off int64) (int, error) {
	b.checkRange(off, int64(len(p)))
	copy(b.data[off:], p)
	b.markWritten(off, off+int64(len(p)))
	return len(p), nil
}

func (b *Buffer) markWritten(off, end int64) {
	if off == end {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		panic("directbuf: write to released Buffer")
	}
	b.written.add(off, end)
	b.notifyLocked()
}

// notifyLocked wakes waiters. Without waiters it does nothing, so a write
// costs no allocation.
func (b *Buffer) notifyLocked() {
	if b.waiters == 0 {
		return
	}
	b.waiters = 0
	close(b.changed)
	b.changed = make(chan struct{})
}

// Fail records that the bytes [off, off+n) will not arrive because of err.
// Waiters on any overlapping range that is not yet written get err.
// It panics if the range lies outside the buffer or err is nil.
func (b *Buffer) Fail(off, n int64, err error) {
	if err == nil {
		panic("directbuf: Fail with nil error")
	}
	b.checkRange(off, n)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failed = append(b.failed, failure{off, off + n, err})
	b.notifyLocked()
}

// Written reports whether [off, off+n) has been written in full.
func (b *Buffer) Written(off, n int64) bool {
	b.checkRange(off, n)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.written.covers(off, off+n)
}

// Wait blocks until [off, off+n) has been written and returns nil; or
// returns the error of a failed range that overlaps a missing byte of it; or
// returns ctx.Err() if ctx is done first. It panics if the range lies
// outside the buffer.
func (b *Buffer) Wait(ctx context.Context, off, n int64) error {
	b.checkRange(off, n)
	end := off + n
	for {
		b.mu.Lock()
		if b.written.covers(off, end) {
			b.mu.Unlock()
			return nil
		}
		for _, f := range b.failed {
			if f.off < end && off < f.end && !b.written.covers(max(off, f.off), min(end, f.end)) {
				b.mu.Unlock()
				return f.err
			}
		}
		ch := b.changed
		b.waiters++
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			// Leaving b.waiters counted only costs one spurious channel
			// swap on the next write.
			return ctx.Err()
		}
	}
}

// section returns an io.Writer that fills [off, off+n) of the buffer in
// order. Its writes are plain memmoves with no lock, safe to hand to a
// downloader's event loop; the bytes become visible to Wait and Written only
// when Commit is called, so a caller commits once the source has vouched for
// them (the range completed, checksums passed) and a reader never sees bytes
// that a failed range left behind. A Write past the section's end copies what
// fits and returns errOverflow. It panics if the range lies outside the
// buffer.
func (b *Buffer) section(off, n int64) *section {
	b.checkRange(off, n)
	return &section{b: b, start: off, off: off, end: off + n}
}

// section is a sequential writer over a range of a Buffer, for a source
// that writes through an io.Writer (a downloader's event loop). No caller
// outside the tests needs one yet: prefetch fills Bytes and commits.
// It is not safe for concurrent use.
type section struct {
	b               *Buffer
	start, off, end int64
}

var _ io.Writer = (*section)(nil)

// Write implements io.Writer.
func (s *section) Write(p []byte) (int, error) {
	room := s.end - s.off
	var err error
	if int64(len(p)) > room {
		p, err = p[:room], errOverflow
	}
	n := copy(s.b.data[s.off:], p)
	s.off += int64(n)
	return n, err
}

// Commit marks every byte written through the section so far as written in
// the buffer, waking waiters.
func (s *section) Commit() { s.b.markWritten(s.start, s.off) }

// Written returns how many bytes have been written through the section.
func (s *section) Written() int64 { return s.off - s.start }

// Remaining returns how many bytes the section still expects.
func (s *section) Remaining() int64 { return s.end - s.off }

// Release returns a pooled buffer to its Pool; for an unpooled buffer it only
// marks it released. The buffer must not be used afterwards. Release panics
// if called twice.
func (b *Buffer) Release() {
	b.mu.Lock()
	if b.released {
		b.mu.Unlock()
		panic("directbuf: Buffer released twice")
	}
	b.released = true
	b.mu.Unlock()
	if b.pool != nil {
		b.pool.put(b)
	}
}

// rangeSet is a sorted list of disjoint, non-adjacent half-open intervals.
type rangeSet []interval

type interval struct{ off, end int64 }

func (s *rangeSet) add(off, end int64) {
	r := *s
	// Find the first interval that ends at or after off (may merge).
	i := 0
	for i < len(r) && r[i].end < off {
		i++
	}
	j := i
	for j < len(r) && r[j].off <= end {
		off = min(off, r[j].off)
		end = max(end, r[j].end)
		j++
	}
	if i == j {
		r = append(r, interval{})
		copy(r[i+1:], r[i:])
		r[i] = interval{off, end}
	} else {
		r[i] = interval{off, end}
		r = append(r[:i+1], r[j:]...)
	}
	*s = r
}

func (s rangeSet) covers(off, end int64) bool {
	if off >= end {
		return true
	}
	for _, iv := range s {
		if iv.off <= off && end <= iv.end {
			return true
		}
		if iv.off > off {
			return false
		}
	}
	return false
}

// Commit marks [off, off+n) as written after the caller filled it through
// Bytes, waking waiters. It panics if the range lies outside the buffer.
func (b *Buffer) Commit(off, n int64) {
	b.checkRange(off, n)
	b.markWritten(off, off+n)
}
