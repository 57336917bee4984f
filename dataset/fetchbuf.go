package dataset

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// fetchBuffers recycles the buffers fetches read column chunks into, across
// tasks and executions: fresh memory costs a page fault per page on its
// first write, and on a small VM that ran slower than the link (a scan of
// the in-memory bench spent a tenth of its CPU faulting in fetch buffers).
// A buffer goes back only once nothing reads it: its task's decode has
// ended (arrow-go copies every byte it reads out of it: see
// pageStreamBuffer), or its fetch failed and every part of it returned.
var fetchBuffers bufferPool

// minPooledBuffer is the smallest buffer pooled: smaller ones are cheap to
// make and their classes would be many.
const minPooledBuffer = 64 << 10

// maxPooledBuffer is the largest buffer pooled; past it a buffer is made
// at its exact size (and class sizes cannot overflow).
const maxPooledBuffer = 1 << 40

// scrubByte is what bufferPool.scrub fills released buffers with.
const scrubByte = 0xA5

// bufferPool holds released buffers by size class (see bufferClass).
// Buffers left in it go with the garbage collector, as a sync.Pool's do.
type bufferPool struct {
	classes  sync.Map     // class size (int64) → *sync.Pool of *[]byte
	released atomic.Int64 // buffers put back
	// scrub, set by the package's tests before any read, fills every
	// buffer put back with a pattern: a block still pointing into one
	// would show it instead of its values.
	scrub bool
}

// bufferClass is the capacity of the buffer a fetch of n bytes gets: n
// rounded up to a sixteenth of the power of two at or above it, so a
// buffer is at most an eighth larger than asked for; n itself when it is
// not pooled.
func bufferClass(n int64) int64 {
	if n < minPooledBuffer || n > maxPooledBuffer {
		return n
	}
	step := int64(1) << (bits.Len64(uint64(n-1)) - 4)
	return (n + step - 1) / step * step
}

// get returns a buffer of n bytes (n >= 0) with capacity bufferClass(n),
// holding whatever its last user left in it.
func (p *bufferPool) get(n int64) []byte {
	if n < minPooledBuffer || n > maxPooledBuffer {
		return make([]byte, n)
	}
	c := bufferClass(n)
	if b, ok := p.class(c).Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, c)
}

// put returns a buffer from get for a later get; the caller must not use
// it (or any slice of it) again.
func (p *bufferPool) put(b []byte) {
	c := int64(cap(b))
	if c < minPooledBuffer || c > maxPooledBuffer || bufferClass(c) != c {
		return
	}
	b = b[:c]
	if p.scrub {
		for i := range b {
			b[i] = scrubByte
		}
	}
	p.released.Add(1)
	p.class(c).Put(&b)
}

func (p *bufferPool) class(c int64) *sync.Pool {
	if v, ok := p.classes.Load(c); ok {
		return v.(*sync.Pool)
	}
	v, _ := p.classes.LoadOrStore(c, &sync.Pool{})
	return v.(*sync.Pool)
}
