package directbuf

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// ErrTooLarge is returned by Pool.Get for a size larger than the whole
// budget: such a request could never be satisfied.
var ErrTooLarge = errors.New("directbuf: buffer larger than the pool's budget")

// Pool recycles Buffers under a byte budget. Every byte a pooled buffer
// holds, whether handed out or kept for reuse, counts against the budget, so
// the memory behind a Pool never exceeds it. Get waits (or TryGet fails)
// rather than allocate past the budget.
//
// A Pool is safe for concurrent use.
type Pool struct {
	budget int64
	sem    *semaphore.Weighted

	mu        sync.Mutex
	free      []*Buffer // released buffers kept for reuse; their weight stays acquired
	freeBytes int64
	inUse     int64 // bytes (capacities) of buffers handed out
	highWater int64 // most bytes ever acquired from the budget
	acquired  int64 // inUse + freeBytes
	waiting   int   // callers blocked in Get
}

// NewPool returns a Pool whose buffers never hold more than budget bytes in
// total. It panics if budget is not positive.
func NewPool(budget int64) *Pool {
	if budget <= 0 {
		panic("directbuf: pool budget must be positive")
	}
	return &Pool{budget: budget, sem: semaphore.NewWeighted(budget)}
}

// Budget returns the pool's byte budget.
func (p *Pool) Budget() int64 { return p.budget }

// InUse returns the bytes of buffers handed out and not yet released: 0
// once every user has let go, which is how a caller that shares the pool
// (prefetch's tests of Engine.Close) checks that no buffer leaked.
func (p *Pool) InUse() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// HighWater returns the most bytes the pool has ever held at once (handed
// out plus kept for reuse). It never exceeds Budget.
func (p *Pool) HighWater() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.highWater
}

// Get returns a buffer of exactly size bytes, reusing a released one when it
// fits, waiting for budget if none is free. It returns ctx.Err() if ctx is
// done before the budget allows the buffer, and ErrTooLarge (wrapped) if size
// exceeds the whole budget; in both cases nothing is held. It panics if size
// is negative.
func (p *Pool) Get(ctx context.Context, size int) (*Buffer, error) {
	if b, ok, err := p.get(size, true); ok || err != nil {
		return b, err
	}
	// get counted us in p.waiting under the same lock that saw no room, so
	// a put from here on evicts its buffer instead of caching it.
	err := p.sem.Acquire(ctx, int64(size))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiting--
	if err != nil {
		return nil, err
	}
	return p.allocatedLocked(size), nil
}

// TryGet is Get without waiting: it returns false if the budget does not
// allow the buffer now (or ever).
func (p *Pool) TryGet(size int) (*Buffer, bool) {
	b, ok, _ := p.get(size, false)
	return b, ok
}

// get tries to satisfy a request without blocking. When it fails and willWait
// is set, it counts the caller as waiting before it lets go of the lock.
func (p *Pool) get(size int, willWait bool) (*Buffer, bool, error) {
	if size < 0 {
		panic("directbuf: negative size")
	}
	if int64(size) > p.budget {
		return nil, false, fmt.Errorf("%w: %d > %d", ErrTooLarge, size, p.budget)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Reuse a free buffer that fits without wasting more than half of it.
	for i, b := range p.free {
		if c := int(b.cap); c >= size && c <= 2*size+4096 {
			p.free = append(p.free[:i], p.free[i+1:]...)
			p.freeBytes -= b.cap
			p.inUse += b.cap
			b.reset(size)
			return b, true, nil
		}
	}
	if p.sem.TryAcquire(int64(size)) {
		return p.allocatedLocked(size), true, nil
	}
	// Drop cached buffers that do not fit to make room.
	for len(p.free) > 0 {
		b := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.freeBytes -= b.cap
		p.acquired -= b.cap
		p.sem.Release(b.cap)
		if p.sem.TryAcquire(int64(size)) {
			return p.allocatedLocked(size), true, nil
		}
	}
	if willWait {
		p.waiting++
	}
	return nil, false, nil
}

// allocatedLocked makes a new buffer whose weight has just been acquired.
func (p *Pool) allocatedLocked(size int) *Buffer {
	b := New(size)
	b.pool = p
	b.cap = int64(size)
	p.inUse += b.cap
	p.acquired += b.cap
	p.highWater = max(p.highWater, p.acquired)
	return b
}

// put takes a released buffer back.
func (p *Pool) put(b *Buffer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse -= b.cap
	p.free = append(p.free, b)
	p.freeBytes += b.cap
	// Keep at most half the budget cached, and nothing while someone waits:
	// a waiter blocked on the semaphore must not be starved by cached
	// buffers of the wrong size.
	for (p.freeBytes > p.budget/2 || p.waiting > 0) && len(p.free) > 0 {
		old := p.free[0]
		p.free = p.free[1:]
		p.freeBytes -= old.cap
		p.acquired -= old.cap
		p.sem.Release(old.cap)
	}
}
