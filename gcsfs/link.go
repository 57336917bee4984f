package gcsfs

import (
	"sync"
	"time"
)

// linkEstimate is what this FS's reads have seen of the link: moving
// averages of the time to first byte and of the rate one request streams
// at. Its bandwidth-delay product sizes the first prefetch window of a
// file, so that the parallel parts of that window keep the link busy for
// one round trip. It is safe for concurrent use.
type linkEstimate struct {
	mu   sync.Mutex
	ttfb float64 // seconds; 0 before the first sample
	rate float64 // bytes per second of one request; 0 before the first sample
}

// Samples smaller than minRateSample bytes, or that streamed in less than
// minRateTime, say more about scheduling than about the link's rate.
const (
	minRateSample = 256 << 10
	minRateTime   = time.Millisecond
	// ewmaWeight is the weight of a new sample in the moving averages.
	ewmaWeight = 0.25
)

// observe records one completed request: its time to first byte, its size
// and how long its bytes took after the first.
func (l *linkEstimate) observe(ttfb time.Duration, n int64, transfer time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ttfb = ewma(l.ttfb, ttfb.Seconds())
	if n >= minRateSample && transfer >= minRateTime {
		l.rate = ewma(l.rate, float64(n)/transfer.Seconds())
	}
}

func ewma(avg, sample float64) float64 {
	if avg == 0 {
		return sample
	}
	return avg + ewmaWeight*(sample-avg)
}

// window returns the bandwidth-delay product of parallel requests: time to
// first byte x one request's rate x parallel, or 0 while the FS has not
// seen enough to tell.
func (l *linkEstimate) window(parallel int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ttfb == 0 || l.rate == 0 {
		return 0
	}
	w := l.ttfb * l.rate * float64(parallel)
	if w >= 1<<62 {
		return 1 << 62
	}
	return int64(w)
}
