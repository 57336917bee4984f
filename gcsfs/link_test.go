package gcsfs

import (
	"testing"
	"time"
)

// The first window is the measured bandwidth-delay product: time to first
// byte x one request's rate x parallel requests; unknown until both were
// seen; small or instant transfers do not count as rate samples.
func TestLinkEstimateWindow(t *testing.T) {
	var l linkEstimate
	if w := l.window(8); w != 0 {
		t.Fatalf("window with no samples = %d", w)
	}
	l.observe(30*time.Millisecond, 4096, 0) // a small read: latency only
	if w := l.window(8); w != 0 {
		t.Fatalf("window with no rate sample = %d", w)
	}
	l.observe(30*time.Millisecond, 10<<20, 100*time.Millisecond) // 100 MiB/s
	want := int64(30 * (100 << 20) * 8 / 1000)
	if w := l.window(8); w < want*99/100 || w > want*101/100 {
		t.Fatalf("window = %d, want about %d", w, want)
	}
	// Averages move toward new samples.
	for range 50 {
		l.observe(2*time.Millisecond, 10<<20, 50*time.Millisecond) // 200 MiB/s
	}
	want = 2 * (200 << 20) * 8 / 1000
	if w := l.window(8); w < want*95/100 || w > want*105/100 {
		t.Fatalf("window after the link changed = %d, want about %d", w, want)
	}
}
