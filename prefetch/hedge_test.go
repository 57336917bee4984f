package prefetch

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/zonalread/zonalread/directbuf"
	"github.com/zonalread/zonalread/internal/testkit"
)

// hedgingMem is a memFetcher that counts the bytes asked through
// ReadAtHedged apart.
type hedgingMem struct {
	*memFetcher
	hedged atomic.Int64 // bytes asked through ReadAtHedged
}

func (h *hedgingMem) ReadAtHedged(ctx context.Context, p []byte, off int64) (int, error) {
	h.hedged.Add(int64(len(p)))
	return h.ReadAt(ctx, p, off)
}

// Random reads go through ReadAtHedged; prefetch windows and ReadDirect
// through ReadAt.
func TestHedgingOnlyRandomReads(t *testing.T) {
	h := &hedgingMem{memFetcher: newMem(8 << 20)}
	// A budget that never runs short: with the default (2 x MaxPrefetch), a
	// window could find the last one's buffer not yet given back (that
	// happens on another goroutine) and be skipped, and the read it would
	// have served went direct (a CI run saw 6 direct reads, not 3).
	e := New(h, int64(len(h.data)), &Options{BlockSize: 64 << 10, MaxPrefetch: 256 << 10, MinPartSize: 16 << 10, Buffers: directbuf.NewPool(64 << 20)})
	defer e.Close()
	ctx := context.Background()
	buf := make([]byte, 4<<10)
	// Random reads: every byte through ReadAtHedged.
	for _, off := range []int64{5 << 20, 1 << 20, 7<<20 + 9} {
		if _, err := e.ReadAt(ctx, buf, off); err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, "random read", buf, h.data[off:off+int64(len(buf))])
	}
	if got := h.hedged.Load(); got != 3*int64(len(buf)) {
		t.Fatalf("%d bytes through ReadAtHedged after 3 random reads of %d, want %d", got, len(buf), 3*len(buf))
	}
	// A sequential run: its prefetch windows are plain ReadAt; only the
	// reads before the run starts (MinStreak) are random.
	before := h.hedged.Load()
	for off := int64(0); off < 2<<20; off += int64(len(buf)) {
		if _, err := e.ReadAt(ctx, buf, off); err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, "sequential read", buf, h.data[off:off+int64(len(buf))])
	}
	if s := e.Stats(); s.Prefetched == 0 {
		t.Fatal("the sequential run prefetched nothing")
	}
	if got := h.hedged.Load() - before; got > DefaultMinStreak*int64(len(buf)) {
		t.Errorf("%d bytes of a sequential run through ReadAtHedged, want at most the %d reads before the window", got, DefaultMinStreak)
	}
	// ReadDirect: plain ReadAt.
	before = h.hedged.Load()
	whole := make([]byte, len(h.data))
	if err := e.ReadDirect(ctx, whole, 0); err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "ReadDirect", whole, h.data)
	if got := h.hedged.Load() - before; got != 0 {
		t.Errorf("%d bytes of ReadDirect through ReadAtHedged, want 0", got)
	}
}
