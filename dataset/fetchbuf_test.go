package dataset

import (
	"math"
	"testing"
)

// A buffer's class holds what was asked, wastes at most an eighth, is its
// own class, and sizes outside the pooled range are taken as they are
// (none overflows).
func TestBufferClass(t *testing.T) {
	for _, n := range []int64{0, 1, minPooledBuffer - 1, minPooledBuffer, minPooledBuffer + 1, 1 << 20, 1<<20 + 1, 3<<20 + 12345, 24 << 20, maxPooledBuffer - 1, maxPooledBuffer, maxPooledBuffer + 1, math.MaxInt64} {
		c := bufferClass(n)
		if c < n || c-n > n/8 {
			t.Errorf("bufferClass(%d) = %d: want within [n, n+n/8]", n, c)
		}
		if bufferClass(c) != c {
			t.Errorf("bufferClass(%d) = %d is not its own class (%d)", n, c, bufferClass(c))
		}
		if (n < minPooledBuffer || n > maxPooledBuffer) && c != n {
			t.Errorf("bufferClass(%d) = %d: an unpooled size is taken as it is", n, c)
		}
	}
}

// get hands out n bytes at the class's capacity, put takes back only
// buffers of a class, and a released buffer comes back scrubbed.
func TestBufferPoolReuses(t *testing.T) {
	var p bufferPool
	p.scrub = true
	const n = 1<<20 + 1
	b := p.get(n)
	if len(b) != n || int64(cap(b)) != bufferClass(n) {
		t.Fatalf("get(%d): len %d cap %d, want cap %d", n, len(b), cap(b), bufferClass(n))
	}
	b[0] = 1
	p.put(b)
	p.put(make([]byte, n)) // not a class: dropped
	if p.released.Load() != 1 {
		t.Fatalf("%d buffers taken back, want 1", p.released.Load())
	}
	for _, small := range []int64{0, 10, minPooledBuffer - 1} {
		if b := p.get(small); int64(len(b)) != small {
			t.Fatalf("get(%d) = %d bytes", small, len(b))
		}
	}
	// A sync.Pool may drop what it holds at any time, so only a buffer
	// that did come back is checked.
	if again := p.get(n); &again[:1][0] == &b[:1][0] && again[0] != scrubByte {
		t.Fatalf("a reused buffer kept its bytes: %#x", again[0])
	}
}
