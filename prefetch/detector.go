package prefetch

import "github.com/zonalread/zonalread/internal/byterange"

// Detector decides, read by read, whether a reader is sequential and how far
// ahead to prefetch. It does no I/O and keeps no data: the Engine feeds it
// the (offset, size) of each read and acts on its Decisions, so its
// behaviour is tested with plain traces.
//
// A read is sequential when it starts where the previous read ended.
// Prefetching starts on the MinStreak-th sequential read in a row (3 by
// default): a readahead cache that issues the block it needs and the next
// one together produces two reads in a row that look sequential, and that
// must not start prefetching.
//
//	read:      r1        r2        r3        r4        r5
//	           [--)      [--)      [--)      [--)      [--)
//	streak:    1         2         3         4         5
//	prefetch:  no        no        yes       yes       yes
//	window:    0         0         max(n,B)  2x        4x ... up to MaxPrefetch
//
// A read that does not start where the previous one ended resets the streak
// to 1 and the window to 0, and asks the engine to drop prefetched data it
// cannot use. A zero-length read changes nothing.
type Detector struct {
	// BlockSize is the smallest window. MaxPrefetch is the largest.
	BlockSize, MaxPrefetch int64
	// MinStreak is the sequential read that starts prefetching.
	MinStreak int

	next   int64 // where the previous read ended; -1 before the first read
	streak int   // reads in the current sequential run
	window int64 // bytes to keep prefetched beyond the end of the read
}

// Decision is the Detector's verdict on one read.
type Decision struct {
	// Sequential reports that the read started where the previous ended.
	Sequential bool
	// Reset reports a break in the run: prefetched data that the read does
	// not touch is useless and can be dropped.
	Reset bool
	// Window is how many bytes past the end of this read should be
	// prefetched; 0 means no prefetching.
	Window int64
}

// NewDetector returns a Detector with the given limits. It panics if
// blockSize or maxPrefetch is not positive or minStreak is below 1.
func NewDetector(blockSize, maxPrefetch int64, minStreak int) *Detector {
	if blockSize <= 0 || maxPrefetch <= 0 || minStreak < 1 {
		panic("prefetch: bad detector limits")
	}
	return &Detector{BlockSize: blockSize, MaxPrefetch: maxPrefetch, MinStreak: minStreak, next: -1}
}

// Observe records a read of n bytes at off and returns what to do.
func (d *Detector) Observe(off, n int64) Decision {
	if n == 0 {
		return Decision{Sequential: off == d.next, Window: d.window}
	}
	seq := d.next >= 0 && off == d.next
	// A read that ends past MaxInt64 cannot be followed: no read starts
	// there, so the next read breaks the run.
	d.next = -1
	if end, ok := byterange.End(off, n); ok {
		d.next = end
	}
	if !seq {
		reset := d.streak > 0
		d.streak, d.window = 1, 0
		if d.MinStreak == 1 {
			d.window = min(max(n, d.BlockSize), d.MaxPrefetch)
		}
		return Decision{Reset: reset, Window: d.window}
	}
	d.streak++
	switch {
	case d.streak < d.MinStreak:
		d.window = 0
	case d.window == 0:
		d.window = min(max(n, d.BlockSize), d.MaxPrefetch)
	default:
		// Compared by halves: 2*d.window could overflow.
		if d.window <= d.MaxPrefetch/2 {
			d.window *= 2
		} else {
			d.window = d.MaxPrefetch
		}
	}
	return Decision{Sequential: true, Window: d.window}
}

// Streak returns the number of reads in the current sequential run.
func (d *Detector) Streak() int { return d.streak }
