package prefetch

import "github.com/zonalread/zonalread/internal/byterange"

// detector decides, read by read, whether a reader is sequential and how far
// ahead to prefetch. It does no I/O and keeps no data: the Engine feeds it
// the (offset, size) of each read and acts on its decisions, so its
// behaviour is tested with plain traces.
//
// A read is sequential when it starts where the previous read ended.
// Prefetching starts on the minStreak-th sequential read in a row
// (DefaultMinStreak): a readahead cache that issues the block it needs and
// the next one together produces two reads in a row that look sequential,
// and that must not start prefetching.
//
//	read:      r1        r2        r3        r4        r5
//	           [--)      [--)      [--)      [--)      [--)
//	streak:    1         2         3         4         5
//	prefetch:  no        no        yes       yes       yes
//	window:    0         0         max(n,B)  2x        4x ... up to maxPrefetch
//
// A read that does not start where the previous one ended resets the streak
// to 1 and the window to 0, and asks the engine to drop prefetched data it
// cannot use. A zero-length read changes nothing.
//
// With zeroStarts, a stream's read at offset 0 starts a run at once: a reader
// that starts at the beginning of an object almost always goes on to read
// it, and waiting for the third read would cost two round trips of a file
// that may take only a few. Its window is the first window (firstWindow,
// at least the read's size), doubling from there as usual.
//
// Its zero value is not usable (next must start at -1): make one with
// newDetector.
type detector struct {
	blockSize   int64 // the smallest window
	firstWindow int64 // the window a run starts with (>= blockSize)
	zeroStarts  bool  // a read at offset 0 starts a run at once
	maxPrefetch int64 // the largest window
	minStreak   int   // the sequential read that starts prefetching

	next   int64 // where the previous read ended; -1 before the first read
	streak int   // reads in the current sequential run
	window int64 // bytes to keep prefetched beyond the end of the read
}

// decision is the detector's verdict on one read.
type decision struct {
	// sequential reports that the read started where the previous ended.
	sequential bool
	// reset reports a break in the run: prefetched data that the read does
	// not touch is useless and can be dropped.
	reset bool
	// window is how many bytes past the end of this read should be
	// prefetched; 0 means no prefetching.
	window int64
}

// newDetector returns a detector with the given limits. It panics if
// blockSize or maxPrefetch is not positive or minStreak is below 1.
func newDetector(blockSize, maxPrefetch int64, minStreak int) *detector {
	if blockSize <= 0 || maxPrefetch <= 0 || minStreak < 1 {
		panic("prefetch: bad detector limits")
	}
	return &detector{blockSize: blockSize, firstWindow: blockSize, maxPrefetch: maxPrefetch, minStreak: minStreak, next: -1}
}

// withStart sets the window a run starts with (clamped to [blockSize,
// maxPrefetch]) and whether a read at offset 0 starts a run at once, and
// returns d.
func (d *detector) withStart(firstWindow int64, zeroStarts bool) *detector {
	d.firstWindow = min(max(firstWindow, d.blockSize), d.maxPrefetch)
	d.zeroStarts = zeroStarts
	return d
}

// startWindow is the window of a run's first prefetching read of n bytes.
func (d *detector) startWindow(n int64) int64 {
	return min(max(n, d.firstWindow), d.maxPrefetch)
}

// observe records a read of n bytes at off and returns what to do.
func (d *detector) observe(off, n int64) decision { return d.observeRead(off, n, false) }

// observeRead is observe; stream marks a read of a stream (io.Reader's
// Read), whose read at offset 0 starts a run at once when zeroStarts is
// set. A ReadAt at 0 is as often a header as the start of a scan.
func (d *detector) observeRead(off, n int64, stream bool) decision {
	if d.minStreak < 1 {
		panic("prefetch: detector not made by newDetector")
	}
	if n == 0 {
		return decision{sequential: off == d.next, window: d.window}
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
		if d.minStreak == 1 || (off == 0 && stream && d.zeroStarts) {
			d.streak = max(1, d.minStreak)
			d.window = d.startWindow(n)
		}
		return decision{reset: reset, window: d.window}
	}
	d.streak++
	switch {
	case d.streak < d.minStreak:
		d.window = 0
	case d.window == 0:
		d.window = d.startWindow(n)
	default:
		// Compared by halves: 2*d.window could overflow.
		if d.window <= d.maxPrefetch/2 {
			d.window *= 2
		} else {
			d.window = d.maxPrefetch
		}
	}
	return decision{sequential: true, window: d.window}
}
