package gcsfs

import (
	"testing"
	"time"

	"github.com/zonalread/zonalread/mrdpool"
)

// timing is a range that had its stream to itself.
func timing(ttfb time.Duration, n int64, transfer time.Duration) mrdpool.RangeTiming {
	return mrdpool.RangeTiming{TTFB: ttfb, Bytes: n, Transfer: transfer, Sharing: 1}
}

// The first window is the measured bandwidth-delay product: time to first
// byte x one request's rate x parallel requests; unknown until both were
// seen; small or instant transfers do not count as rate samples.
func TestLinkEstimateWindow(t *testing.T) {
	var l linkEstimate
	if w := l.window(8); w != 0 {
		t.Fatalf("window with no samples = %d", w)
	}
	l.observe(timing(30*time.Millisecond, 4096, 0)) // a small read: latency only
	if w := l.window(8); w != 0 {
		t.Fatalf("window with no rate sample = %d", w)
	}
	l.observe(timing(30*time.Millisecond, 10<<20, 100*time.Millisecond)) // 100 MiB/s
	want := int64(30 * (100 << 20) * 8 / 1000)
	if w := l.window(8); w < want*99/100 || w > want*101/100 {
		t.Fatalf("window = %d, want about %d", w, want)
	}
	// Averages move toward new samples.
	for range 50 {
		l.observe(timing(2*time.Millisecond, 10<<20, 50*time.Millisecond)) // 200 MiB/s
	}
	want = 2 * (200 << 20) * 8 / 1000
	if w := l.window(8); w < want*95/100 || w > want*105/100 {
		t.Fatalf("window after the link changed = %d, want about %d", w, want)
	}
}

// A range that shared its multi-range downloader's stream with others got
// a share of the stream's rate: it counts at the rate of the stream, so
// that a zonal file's first window is not sized from a busy stream as if
// the link were slow (ranges of overlapping windows share the pool's
// streams three or four to one).
func TestLinkEstimateSharedStream(t *testing.T) {
	var alone, shared linkEstimate
	alone.observe(timing(30*time.Millisecond, 10<<20, 100*time.Millisecond)) // 100 MiB/s
	// A quarter of a 100 MiB/s stream: 10 MiB in 400 ms.
	shared.observe(mrdpool.RangeTiming{TTFB: 30 * time.Millisecond, Bytes: 10 << 20, Transfer: 400 * time.Millisecond, Sharing: 4})
	if a, s := alone.window(8), shared.window(8); a != s {
		t.Fatalf("window from a range sharing its stream four ways = %d, want %d (the stream's rate)", s, a)
	}
	// Sharing 0 (a caller that does not know) counts as alone.
	var unknown linkEstimate
	unknown.observe(mrdpool.RangeTiming{TTFB: 30 * time.Millisecond, Bytes: 10 << 20, Transfer: 100 * time.Millisecond})
	if a, u := alone.window(8), unknown.window(8); a != u {
		t.Fatalf("window with Sharing 0 = %d, want %d", u, a)
	}
}

// The hedge delay is the nearest-rank p95 of the last hedgeSamples times
// to first byte, at least HedgeMinDelay, and unknown before
// HedgeMinSamples.
func TestLinkEstimateHedgeDelay(t *testing.T) {
	var l linkEstimate
	for i := range HedgeMinSamples - 1 {
		l.observe(timing(time.Duration(i+1)*time.Second, 4096, 0))
		if d, ok := l.hedgeDelay(DefaultHedgeQuantile); ok {
			t.Fatalf("hedge delay %v after %d samples, want none before %d", d, i+1, HedgeMinSamples)
		}
	}
	// 1..100 ms: the p95 is 95 ms.
	l = linkEstimate{}
	for i := range 100 {
		l.observe(timing(time.Duration(100-i)*time.Millisecond, 4096, 0))
	}
	if d, ok := l.hedgeDelay(DefaultHedgeQuantile); !ok || d != 95*time.Millisecond {
		t.Fatalf("hedge delay = %v, %v; want 95ms", d, ok)
	}
	// A new sample is seen at once; the oldest go once the ring is full.
	l.observe(timing(time.Hour, 4096, 0))
	if d, _ := l.hedgeDelay(DefaultHedgeQuantile); d != 96*time.Millisecond {
		t.Fatalf("hedge delay after one slow sample = %v, want 96ms", d)
	}
	for range hedgeSamples {
		l.observe(timing(10*time.Millisecond, 4096, 0))
	}
	if d, _ := l.hedgeDelay(DefaultHedgeQuantile); d != 10*time.Millisecond {
		t.Fatalf("hedge delay after the link changed = %v, want 10ms", d)
	}
	// Never under HedgeMinDelay.
	for range hedgeSamples {
		l.observe(timing(time.Microsecond, 4096, 0))
	}
	if d, _ := l.hedgeDelay(DefaultHedgeQuantile); d != HedgeMinDelay {
		t.Fatalf("hedge delay of a local link = %v, want %v", d, HedgeMinDelay)
	}
}

// The quantile is the one asked for.
func TestLinkEstimateHedgeQuantile(t *testing.T) {
	var l linkEstimate
	for i := range 100 {
		l.observe(timing(time.Duration(i+1)*time.Millisecond, 4096, 0))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.95, 95 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0.001, time.Millisecond}} {
		if d, ok := l.hedgeDelay(c.q); !ok || d != c.want {
			t.Errorf("hedgeDelay(%v) = %v, %v; want %v", c.q, d, ok, c.want)
		}
	}
}

// The window an open fetches is the link's bandwidth-delay product,
// within [BlockSize, MaxPrefetch], cut to the power of two over the last
// file read from its start, never above the product itself nor under
// BlockSize.
func TestFirstWindow(t *testing.T) {
	const MiB = 1 << 20
	f := &FS{opts: Options{BlockSize: MiB, MaxPrefetch: 64 * MiB, Concurrency: 8}}
	if w := f.firstWindow(); w != MiB {
		t.Fatalf("no link estimate: window %d, want BlockSize", w)
	}
	f.link.observe(timing(30*time.Millisecond, 100*MiB, time.Second)) // 100 MiB/s: 24 MiB over 8 requests
	for _, c := range []struct{ last, want int64 }{
		{0, 24 * MiB},         // no file read yet: the product
		{100 * MiB, 24 * MiB}, // a larger file: the product
		{20 * MiB, 24 * MiB},  // its power of two (32 MiB) is over the product
		{3 * MiB, 4 * MiB},    // the power of two over it
		{100, MiB},            // never under BlockSize
	} {
		f.startSize.Store(c.last)
		if w := f.firstWindow(); w != c.want {
			t.Errorf("last file %d bytes: window %d, want %d", c.last, w, c.want)
		}
	}
}
