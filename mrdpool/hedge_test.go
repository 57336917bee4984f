package mrdpool_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
	"github.com/zonalread/zonalread/mrdpool"
)

// hedgeAfter is a HedgeDelay that is always ready.
func hedgeAfter(d time.Duration) func() (time.Duration, bool) {
	return func() (time.Duration, bool) { return d, true }
}

// forever is a SlowFactor that makes a slow response wait until its
// caller goes away.
const forever = math.MaxInt

// A hedged read whose first request is slow gets its bytes from the second
// one; the first is cancelled before it sends a byte (over HTTP the server
// sees it end; a multi-range downloader cannot cancel a range, whose bytes
// would be dropped), and only the winner's bytes were sent.
func TestHedgeTakesTheFasterRequest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		ep := b.ep(r)
		// Only ReadAtHedged asks HedgeDelay: the hedge starts once the
		// first request is at the server, so the first is the slow one.
		p := mrdpool.New(b.make(r), &mrdpool.Options{HedgeDelay: func() (time.Duration, bool) {
			testkit.WaitFor(t, "the first request to be slowed", func() bool { return ep.Stats().Slowed == 1 })
			return 0, true
		}})
		defer p.Close()
		const n = 4 << 10
		ep.SetShape(testserver.Shape{Latency: time.Millisecond, SlowEvery: 2, SlowFactor: forever})
		checkRange(t, r, p, 0, n) // data request 1 (opens the downloader)
		buf := make([]byte, n)
		const off = 1<<20 + 3
		got, err := p.ReadAtHedged(context.Background(), buf, off) // requests 2 (slow) and 3
		if err != nil || got != n {
			t.Fatalf("ReadAtHedged = %d, %v", got, err)
		}
		testkit.SameBytes(t, "hedged read", buf, r.data[off:off+n])
		if s := p.Stats(); s.Hedges != 1 || s.HedgeWins != 1 || s.HedgeBytes != n {
			t.Errorf("pool stats %+v, want 1 hedge that won", s)
		}
		// A multi-range downloader's hedge shares the open stream rather
		// than wait for a new one; a range reader's needs its own.
		if s, want := p.Stats(), map[string]int64{"MRD": 1, "RangeReader": 2}[b.name]; s.Opened != want {
			t.Errorf("%d downloaders opened, want %d", s.Opened, want)
		}
		if b.name == "RangeReader" {
			testkit.WaitFor(t, "the slow request to end", func() bool { return ep.Stats().InFlight == 0 })
		}
		if s := ep.Stats(); s.Slowed != 1 || s.Requests != 3 || s.Bytes != 2*n {
			t.Errorf("server: %d slow, %d requests, %d bytes sent; want 1 slow, 3 requests, %d bytes", s.Slowed, s.Requests, s.Bytes, 2*n)
		}
	})
}

// A read whose first byte comes before the hedge delay is not hedged; nor
// is any read while HedgeDelay is not ready, nor a plain ReadAt.
func TestHedgeNotNeeded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		ready := false
		p := mrdpool.New(b.make(r), &mrdpool.Options{HedgeDelay: func() (time.Duration, bool) { return time.Hour, ready }})
		defer p.Close()
		for i, off := range []int64{7, 2 << 20, 3<<20 + 1} {
			ready = i > 0
			buf := make([]byte, 100<<10)
			if _, err := p.ReadAtHedged(context.Background(), buf, off); err != nil {
				t.Fatal(err)
			}
			testkit.SameBytes(t, "read", buf, r.data[off:off+int64(len(buf))])
		}
		// Not ready, or a plain ReadAt: no hedge even at a delay of 0.
		p0 := mrdpool.New(b.make(r), &mrdpool.Options{HedgeDelay: func() (time.Duration, bool) { return 0, false }})
		defer p0.Close()
		checkRange(t, r, p0, 5, 1000)
		buf := make([]byte, 1000)
		if _, err := p0.ReadAtHedged(context.Background(), buf, 5); err != nil {
			t.Fatal(err)
		}
		if s, s0 := p.Stats(), p0.Stats(); s.Hedges != 0 || s0.Hedges != 0 {
			t.Errorf("hedges: %d and %d, want none", s.Hedges, s0.Hedges)
		}
		if s := b.ep(r).Stats(); s.Requests != 5 {
			t.Errorf("%d requests, want 5 (one per read)", s.Requests)
		}
	})
}

// A caller cancelled while both requests of a hedged read wait returns
// ctx's error, and both requests end (goleak checks their goroutines).
func TestHedgeCancelled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		ep := b.ep(r)
		p := mrdpool.New(b.make(r), &mrdpool.Options{HedgeDelay: hedgeAfter(time.Millisecond)})
		defer p.Close()
		checkRange(t, r, p, 0, 10)
		ep.SetShape(testserver.Shape{Latency: time.Millisecond, SlowEvery: 1, SlowFactor: forever})
		testkit.CancelMidCall(t, func() bool { return p.Stats().Hedges == 1 && ep.Stats().Slowed == 2 }, func(ctx context.Context) error {
			_, err := p.ReadAtHedged(ctx, make([]byte, 1000), 77)
			return err
		})
		if b.name == "RangeReader" {
			testkit.WaitFor(t, "both requests to end", func() bool { return ep.Stats().InFlight == 0 })
		}
		if s := p.Stats(); s.HedgeWins != 0 {
			t.Errorf("%d hedges won, want 0", s.HedgeWins)
		}
	})
}
