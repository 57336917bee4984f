package gcsfs_test

import (
	"bytes"
	"context"
	"io"
	"math"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// hedgeRig is an FS over the fake servers whose hedge delay has been
// learnt on a link with a 50 ms first byte, now shaped with a 1 ms first
// byte and every SlowEvery-th data request slow by slowFactor.
type hedgeRig struct {
	*testserver.Test
	fsys *gcsfs.FS
	file *gcsfs.File
	ep   *testserver.Endpoint
	data []byte
}

func newHedgeRig(t *testing.T, zonal bool, opts gcsfs.Options, slowEvery, slowFactor int) *hedgeRig {
	t.Helper()
	r := &hedgeRig{Test: testserver.NewTest(t, &testserver.Options{NoGRPC: !zonal}), data: testkit.RandomBytes(4<<20, 16)}
	r.Put(t, "obj", r.data)
	r.ep = r.Endpoint(zonal)
	opts.BucketName, opts.Zonal = r.Bucket, gcsfs.ZonalOff
	if zonal {
		opts.Zonal, opts.GRPCClient = gcsfs.ZonalOn, r.GRPCStorage
	}
	var err error
	if r.fsys, err = gcsfs.New(context.Background(), r.Blob, &opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.fsys.Close() })
	if r.file, err = r.fsys.OpenContext(context.Background(), "obj"); err != nil {
		t.Fatal(err)
	}
	// The p95 the hedges wait for: about 50 ms, far above the 1 ms of the
	// link the test then reads over, so no read that is not slow is
	// hedged, and the slow first request of a hedged read reaches the
	// server before its hedge.
	r.ep.SetShape(testserver.Shape{Latency: 50 * time.Millisecond})
	for i := range gcsfs.HedgeMinSamples {
		r.readAt(t, int64(i)*200<<10+1, 4<<10)
	}
	r.ep.SetShape(testserver.Shape{Latency: time.Millisecond, SlowEvery: slowEvery, SlowFactor: slowFactor})
	r.ep.ResetStats()
	return r
}

// readAt reads n bytes at off with File.ReadAt (a random read) and checks
// them against the object.
func (r *hedgeRig) readAt(t *testing.T, off int64, n int) {
	t.Helper()
	buf := make([]byte, n)
	if _, err := r.file.ReadAt(buf, off); err != nil {
		t.Fatalf("ReadAt(%d bytes at %d): %v", n, off, err)
	}
	testkit.SameBytes(t, "random read", buf, r.data[off:off+int64(n)])
}

// A random read whose request is slow gets its bytes from the hedge, the
// slow request is cancelled before it sends a byte, and the FS's counters
// show the hedge (its bytes counted as fetched: asked twice).
func TestHedgedRandomRead(t *testing.T) {
	for _, c := range []struct {
		name  string
		zonal bool
	}{
		{"HTTP", false},
		{"MRD", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newHedgeRig(t, c.zonal, gcsfs.Options{Hedge: true}, 2, math.MaxInt)
			before := r.fsys.Stats()
			if before.HedgeDelay < 50*time.Millisecond {
				t.Errorf("HedgeDelay %v after first bytes of 50 ms and more, want at least 50 ms", before.HedgeDelay)
			}
			const n = 4 << 10
			r.readAt(t, 1<<20+5, n) // data request 1
			r.readAt(t, 3<<20+7, n) // 2: slow for ever; 3: the hedge
			s := r.fsys.Stats()
			if h, w := s.Hedges-before.Hedges, s.HedgeWins-before.HedgeWins; h != 1 || w != 1 {
				t.Errorf("%d hedges, %d won; want 1 that won", h, w)
			}
			if f := s.Fetched - before.Fetched; f != 3*n {
				t.Errorf("fetched %d bytes, want %d (two reads, one asked twice)", f, 3*n)
			}
			if !c.zonal {
				testkit.WaitFor(t, "the slow request to end", func() bool { return r.ep.Stats().InFlight == 0 })
			}
			if es := r.ep.Stats(); es.Slowed != 1 || es.Requests != 3 || es.Bytes != 2*n {
				t.Errorf("server: %d slow, %d requests, %d bytes; want 1, 3, %d", es.Slowed, es.Requests, es.Bytes, 2*n)
			}
		})
	}
}

// Hedging is off by default: the slow read waits for its request.
func TestHedgeOffByDefault(t *testing.T) {
	for _, zonal := range []bool{false, true} {
		r := newHedgeRig(t, zonal, gcsfs.Options{}, 2, 100) // slow: 100 ms
		r.readAt(t, 1<<20+5, 4<<10)
		r.readAt(t, 3<<20+7, 4<<10) // slow
		if s := r.fsys.Stats(); s.Hedges != 0 || s.HedgeDelay != 0 {
			t.Errorf("zonal %v: %d hedges, hedge delay %v; want none", zonal, s.Hedges, s.HedgeDelay)
		}
		if es := r.ep.Stats(); es.Slowed != 1 || es.Requests != 2 {
			t.Errorf("zonal %v: server: %d slow, %d requests; want 1, 2", zonal, es.Slowed, es.Requests)
		}
	}
}

// Prefetch windows, ReadFile and WriteTo are never hedged, though every
// request they make is slower than the p95.
func TestNoHedgeOnWindows(t *testing.T) {
	// Every request: 1 s, 20 times the p95 (about 50 ms) so that a loaded
	// machine's slower warm-up reads cannot lift the p95 above it (at
	// 100 ms, a run beside the whole suite saw no hedge).
	r := newHedgeRig(t, false, gcsfs.Options{Hedge: true}, 1, 1000)
	// The control: a random read on this link is hedged. (Then the
	// windows' times to first byte raise the p95 to 1 s.)
	r.readAt(t, 3<<20+11, 4<<10)
	if h := r.fsys.Stats().Hedges; h != 1 {
		t.Fatalf("%d hedges of a slow random read, want 1", h)
	}
	f, err := r.fsys.OpenContext(context.Background(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(io.LimitReader(f, 2<<20)) // a stream from 0: windows
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "stream", got, r.data[:2<<20])
	st := f.Stats()
	if st.Prefetched == 0 {
		t.Fatal("the stream prefetched nothing")
	}
	// The stream's first read is direct (its window starts after it); it
	// may be hedged, nothing else.
	if st.Hedges > 1 { // the file's own: the control read was on r.file
		t.Errorf("%d hedges in a sequential stream, want at most 1 (its first read)", st.Hedges)
	}
	before := r.fsys.Stats().Hedges
	whole, err := r.fsys.ReadFile("obj")
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "ReadFile", whole, r.data)
	var buf bytes.Buffer
	if _, err := r.file.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := r.file.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "WriteTo", buf.Bytes(), r.data)
	if h := r.fsys.Stats().Hedges - before; h != 0 {
		t.Errorf("%d hedges in ReadFile and WriteTo, want 0", h)
	}
}

// A random read cancelled while its request and its hedge both wait
// returns ctx's error (goleak checks that both requests ended).
func TestHedgeCancelledRead(t *testing.T) {
	r := newHedgeRig(t, false, gcsfs.Options{Hedge: true}, 1, math.MaxInt)
	testkit.CancelMidCall(t, func() bool { return r.fsys.Stats().Hedges == 1 && r.ep.Stats().Slowed == 2 }, func(ctx context.Context) error {
		_, err := r.file.ReadAtContext(ctx, make([]byte, 4<<10), 2<<20)
		return err
	})
	testkit.WaitFor(t, "both requests to end", func() bool { return r.ep.Stats().InFlight == 0 })
}
