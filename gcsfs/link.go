package gcsfs

import (
	"slices"
	"sync"
	"time"

	"github.com/zonalread/zonalread/mrdpool"
)

// linkEstimate is what this FS's reads have seen of the link: moving
// averages of the time to first byte and of the rate one request streams
// at. Its bandwidth-delay product sizes the first prefetch window of a
// file, so that the parallel parts of that window keep the link busy for
// one round trip. It is safe for concurrent use.
//
// It also keeps the last hedgeSamples times to first byte, whose quantile
// is how long a random read waits for its first byte before it is hedged
// (hedgeDelay).
type linkEstimate struct {
	mu   sync.Mutex
	ttfb float64 // seconds; 0 before the first sample
	rate float64 // bytes per second of one request; 0 before the first sample

	recent  [hedgeSamples]time.Duration // ring of times to first byte
	held    int                         // samples in recent
	next    int                         // where the next sample goes
	delay   time.Duration               // the quantile delayQ of recent, when fresh
	delayQ  float64                     //
	fresh   bool                        // delay is up to date
	scratch [hedgeSamples]time.Duration // sorted copy of recent
}

// Samples smaller than minRateSample bytes, or that streamed in less than
// minRateTime, say more about scheduling than about the link's rate.
const (
	minRateSample = 256 << 10
	minRateTime   = time.Millisecond
	// ewmaWeight is the weight of a new sample in the moving averages.
	ewmaWeight = 0.25
)

// observe records one completed request: its time to first byte, its size,
// how long its bytes took after the first, and how many requests shared
// its stream (a multi-range downloader's ranges share one stream's rate:
// the rate of one request is what it would get alone).
func (l *linkEstimate) observe(t mrdpool.RangeTiming) {
	ttfb, n, transfer := t.TTFB, t.Bytes, t.Transfer
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ttfb = ewma(l.ttfb, ttfb.Seconds())
	l.recent[l.next] = ttfb
	l.next = (l.next + 1) % hedgeSamples
	l.held = min(l.held+1, hedgeSamples)
	l.fresh = false
	if n >= minRateSample && transfer >= minRateTime {
		l.rate = ewma(l.rate, float64(n)*float64(max(t.Sharing, 1))/transfer.Seconds())
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

// hedgeDelay returns how long a random read may wait for its first byte
// before a second request is issued: the quantile q (in (0, 1]) of the
// recent times to first byte, at least HedgeMinDelay. It says false while
// fewer than HedgeMinSamples have been seen.
func (l *linkEstimate) hedgeDelay(q float64) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held < HedgeMinSamples {
		return 0, false
	}
	if !l.fresh || l.delayQ != q {
		s := l.scratch[:l.held]
		copy(s, l.recent[:l.held])
		slices.Sort(s)
		// Nearest rank: the smallest sample at or above the quantile.
		i := min(max(int(q*float64(len(s))+0.999999)-1, 0), len(s)-1)
		l.delay, l.delayQ, l.fresh = max(s[i], HedgeMinDelay), q, true
	}
	return l.delay, true
}
