package directbuf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"sync"
)

// ErrTooLarge is returned by Pool.Get for a size larger than the whole
// budget: such a request could never be satisfied.
var ErrTooLarge = errors.New("directbuf: buffer larger than the pool's budget")

// minBlock is the smallest block carved from a slab: smaller buffers are
// not worth telling apart.
const minBlock = 64 << 10

// Pool recycles Buffers under a byte budget: the memory behind a Pool never
// exceeds it, and a long run of windows allocates about the budget, not the
// bytes it reads. Get waits (or TryGet fails) rather than allocate past the
// budget.
//
// Memory is allocated in slabs of SlabSize bytes (the largest power of two
// at most a quarter of the budget), each kept for the pool's life and
// carved into power-of-two blocks by a buddy allocator: a buffer of n bytes
// is a block of n rounded up to a power of two (at least 64 KiB); a
// released block merges with its free buddy, so a slab cut into small
// windows serves a whole-slab window again once they are released. Only a
// buffer larger than a slab is allocated on its own (and dropped when
// released). Close lets the slabs go.
//
//	slab:  [ 4 MiB (in use) | 2 MiB (free) | 1 (use) | 1 (free) ]
//	Get(1.5 MiB) takes the free 2 MiB block; Get(3 MiB) waits for a whole
//	4 MiB block or a new slab the budget allows.
//
// A Pool is safe for concurrent use.
type Pool struct {
	budget   int64
	slabSize int64 // 0: no slabs (a budget under 4 blocks); every buffer standalone

	mu        sync.Mutex
	free      []map[blockKey]struct{} // free blocks by order (size minBlock<<order)
	freeBytes int64
	held      int64 // bytes allocated and not let go: slabs and standalone buffers
	inUse     int64 // bytes (block sizes) of buffers handed out
	highWater int64 // most bytes held at once
	waiting   int   // callers blocked in Get
	changed   chan struct{}
	closed    bool

	allocated, reused, dropped int64
}

// slab is one allocation carved into blocks.
type slab struct{ mem []byte }

type blockKey struct {
	s   *slab
	off int64
}

// NewPool returns a Pool whose buffers never hold more than budget bytes in
// total. It panics if budget is not positive.
func NewPool(budget int64) *Pool {
	if budget <= 0 {
		panic("directbuf: pool budget must be positive")
	}
	p := &Pool{budget: budget, changed: make(chan struct{})}
	if budget/4 >= minBlock {
		p.slabSize = 1 << (bits.Len64(uint64(budget/4)) - 1)
		orders := bits.Len64(uint64(p.slabSize / minBlock)) // minBlock .. slabSize
		p.free = make([]map[blockKey]struct{}, orders)
		for i := range p.free {
			p.free[i] = map[blockKey]struct{}{}
		}
	}
	return p
}

// Budget returns the pool's byte budget.
func (p *Pool) Budget() int64 { return p.budget }

// SlabSize returns the size of the pool's slabs: the largest buffer that
// is reused. It is 0 for a budget under 256 KiB, whose buffers are all
// allocated on their own.
func (p *Pool) SlabSize() int64 { return p.slabSize }

// Fit returns the largest size, at most size, whose buffer fills its whole
// block: a caller free to fetch a little less (a prefetch window) asks for
// Fit(n) bytes and holds no budget it does not use. Sizes under the
// smallest block or over SlabSize come back unchanged.
func (p *Pool) Fit(size int) int {
	if size <= minBlock || int64(size) > p.slabSize {
		return size
	}
	return 1 << (bits.Len64(uint64(size)) - 1)
}

// InUse returns the bytes of buffers handed out and not yet released: 0
// once every user has let go, which is how a caller that shares the pool
// (prefetch's tests of Engine.Close) checks that no buffer leaked.
func (p *Pool) InUse() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// HighWater returns the most bytes the pool has ever held at once (slabs
// and standalone buffers). It never exceeds Budget.
func (p *Pool) HighWater() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.highWater
}

// PoolStats are a Pool's counters, in bytes.
type PoolStats struct {
	Budget    int64 // the byte budget
	Held      int64 // memory the pool holds now: slabs and standalone buffers
	InUse     int64 // block sizes of buffers handed out now
	HighWater int64 // most memory ever held at once
	Allocated int64 // memory ever allocated (slabs and standalone buffers)
	Reused    int64 // block sizes of buffers carved from slabs already allocated
	Dropped   int64 // memory let go to the garbage collector before Close
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{
		Budget: p.budget, Held: p.held, InUse: p.inUse, HighWater: p.highWater,
		Allocated: p.allocated, Reused: p.reused, Dropped: p.dropped,
	}
}

func errClosed() error { return fmt.Errorf("directbuf: pool closed: %w", fs.ErrClosed) }

// Get returns a buffer of exactly size bytes, carved from a slab when size
// is at most SlabSize, waiting for a block or for budget when none is free.
// Its weight in the budget is its block's size: size rounded up to a power
// of two (see Fit). Get returns ctx.Err() if ctx is done first, ErrTooLarge
// (wrapped) if size exceeds the whole budget, and an error wrapping
// fs.ErrClosed after Close; in each case nothing is held. While a Get
// waits, TryGet fails, so prefetches do not starve it. It panics if size
// is negative.
func (p *Pool) Get(ctx context.Context, size int) (*Buffer, error) {
	if size < 0 {
		panic("directbuf: negative size")
	}
	if int64(size) > p.budget {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooLarge, size, p.budget)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiting++
	defer func() { p.waiting-- }()
	for {
		if p.closed {
			return nil, errClosed()
		}
		if b := p.getLocked(size); b != nil {
			return b, nil
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		p.mu.Lock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// TryGet is Get without waiting: it returns false if no block is free and
// the budget allows no new memory now (or ever), while a Get waits, or
// after Close.
func (p *Pool) TryGet(size int) (*Buffer, bool) {
	if size < 0 {
		panic("directbuf: negative size")
	}
	if int64(size) > p.budget {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.waiting > 0 {
		return nil, false
	}
	b := p.getLocked(size)
	return b, b != nil
}

// getLocked hands out a buffer of size bytes without blocking, or nil.
func (p *Pool) getLocked(size int) *Buffer {
	if size == 0 || int64(size) > p.slabSize {
		return p.standaloneLocked(size)
	}
	order := 0
	if size > minBlock {
		order = bits.Len64(uint64(size-1)) - bits.Len64(minBlock-1)
	}
	k, j, ok := p.freeBlockLocked(order)
	if ok {
		p.reused += minBlock << order
	} else {
		if !p.makeRoomLocked(p.slabSize) {
			return nil
		}
		s := &slab{mem: make([]byte, p.slabSize)}
		p.allocatedLocked(p.slabSize)
		k, j = blockKey{s: s}, len(p.free)-1
		p.free[j][k] = struct{}{}
		p.freeBytes += p.slabSize
	}
	delete(p.free[j], k)
	p.freeBytes -= minBlock << j
	// Split down to the order asked for; the upper halves stay free.
	for ; j > order; j-- {
		half := int64(minBlock) << (j - 1)
		p.free[j-1][blockKey{k.s, k.off + half}] = struct{}{}
		p.freeBytes += half
	}
	bs := int64(minBlock) << order
	p.inUse += bs
	return &Buffer{data: k.s.mem[k.off : k.off+int64(size) : k.off+bs], changed: make(chan struct{}), pool: p, cap: bs, slab: k.s, boff: k.off}
}

// freeBlockLocked finds a free block of the smallest order at least order.
func (p *Pool) freeBlockLocked(order int) (blockKey, int, bool) {
	for j := order; j < len(p.free); j++ {
		for k := range p.free[j] {
			return k, j, true
		}
	}
	return blockKey{}, 0, false
}

// standaloneLocked allocates a buffer larger than a slab on its own.
func (p *Pool) standaloneLocked(size int) *Buffer {
	if !p.makeRoomLocked(int64(size)) {
		return nil
	}
	p.allocatedLocked(int64(size))
	p.inUse += int64(size)
	return &Buffer{data: make([]byte, size), changed: make(chan struct{}), pool: p, cap: int64(size)}
}

// makeRoomLocked reports whether n more bytes fit the budget, letting
// wholly free slabs go if that makes room (and only then).
func (p *Pool) makeRoomLocked(n int64) bool {
	if p.held+n <= p.budget {
		return true
	}
	top := len(p.free) - 1
	if top < 0 || p.held-int64(len(p.free[top]))*p.slabSize+n > p.budget {
		return false
	}
	for k := range p.free[top] {
		if p.held+n <= p.budget {
			break
		}
		delete(p.free[top], k)
		p.freeBytes -= p.slabSize
		p.letGoLocked(p.slabSize)
	}
	return true
}

func (p *Pool) allocatedLocked(n int64) {
	p.held += n
	p.allocated += n
	p.highWater = max(p.highWater, p.held)
}

func (p *Pool) letGoLocked(n int64) {
	p.held -= n
	if !p.closed {
		p.dropped += n
	}
}

// put takes a released buffer back: its block is freed and merged with
// its free buddies; a standalone buffer is let go.
func (p *Pool) put(b *Buffer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse -= b.cap
	if b.slab == nil {
		p.letGoLocked(b.cap)
	} else {
		k, size := blockKey{b.slab, b.boff}, b.cap
		j := bits.Len64(uint64(size/minBlock)) - 1
		for ; j < len(p.free)-1; j++ {
			buddy := blockKey{k.s, k.off ^ size}
			if _, ok := p.free[j][buddy]; !ok {
				break
			}
			delete(p.free[j], buddy)
			p.freeBytes -= size
			k.off = min(k.off, buddy.off)
			size *= 2
		}
		if p.closed && j == len(p.free)-1 {
			p.letGoLocked(size) // a whole slab, no longer needed
		} else {
			p.free[j][k] = struct{}{}
			p.freeBytes += size
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// Close lets every wholly free slab go (and each other one once its last
// buffer is released) and makes later Gets fail with an error wrapping
// fs.ErrClosed (TryGet returns false); a Get waiting in it fails too.
// Buffers handed out stay valid until released. Close is idempotent and
// returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if top := len(p.free) - 1; top >= 0 {
		for k := range p.free[top] {
			delete(p.free[top], k)
			p.freeBytes -= p.slabSize
			p.letGoLocked(p.slabSize)
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}
