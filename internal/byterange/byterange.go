// Package byterange holds the overflow-safe range arithmetic every package
// of the module uses to check a byte range [off, off+n) against an object
// or buffer of size bytes. Offsets and lengths come from callers, footers
// and servers, so they may be anything an int64 holds: the checks are
// written so that no intermediate value can overflow (off <= size - n, never
// off + n <= size).
package byterange

import "math"

// Within reports whether [off, off+n) lies inside [0, size): off and n are
// not negative and off+n <= size, computed without overflow. An empty range
// at size (off == size, n == 0) is within.
func Within(off, n, size int64) bool {
	return off >= 0 && n >= 0 && n <= size && off <= size-n
}

// End returns off+n and true when off and n are not negative and the sum
// fits in an int64; otherwise it returns 0 and false.
func End(off, n int64) (int64, bool) {
	if off < 0 || n < 0 || off > math.MaxInt64-n {
		return 0, false
	}
	return off + n, true
}

// Add returns a+b and true when the sum fits in an int64 (a and b may be
// negative, as for a seek relative to a position); otherwise it returns 0
// and false.
func Add(a, b int64) (int64, bool) {
	s := a + b
	// Overflow happened iff a and b have the same sign and s has the other.
	if (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0) {
		return 0, false
	}
	return s, true
}

// Part is [Off, Off+N) relative to the start of a range Split cut.
type Part struct{ Off, N int64 }

// Split cuts n bytes into at most k parts of nearly equal size, none under
// minPart unless n itself is (then one part). n must not be negative, k
// and minPart must be positive.
func Split(n int64, k int, minPart int64) []Part {
	count := min(int64(k), max(1, n/minPart))
	parts := make([]Part, 0, count)
	var off int64
	for i := range count {
		sz := n / count
		if i < n%count {
			sz++
		}
		parts = append(parts, Part{off, sz})
		off += sz
	}
	return parts
}
