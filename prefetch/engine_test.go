package prefetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/zonalread/zonalread/directbuf"
	"github.com/zonalread/zonalread/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memFetcher serves an object from memory, counting what it is asked for.
// gate, when set, holds every fetch until it is closed (or ctx ends).
type memFetcher struct {
	data     []byte
	gate     chan struct{}
	requests atomic.Int64
	bytes    atomic.Int64
	mu       sync.Mutex
	failAt   int64 // a fetch covering this offset fails (when >= 0)
	failErr  error
}

func newMem(n int) *memFetcher {
	return &memFetcher{data: testkit.RandomBytes(n, uint64(n)), failAt: -1}
}

func (m *memFetcher) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	m.requests.Add(1)
	m.bytes.Add(int64(len(p)))
	m.mu.Lock()
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	m.mu.Lock()
	failAt, failErr := m.failAt, m.failErr
	m.mu.Unlock()
	if failAt >= off && failAt < off+int64(len(p)) {
		// Like a stream that broke: the bytes before the bad one arrive.
		return copy(p, m.data[off:failAt]), failErr
	}
	if off+int64(len(p)) > int64(len(m.data)) {
		return 0, fmt.Errorf("range past end")
	}
	return copy(p, m.data[off:]), nil
}

func (m *memFetcher) setGate(g chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gate = g
}

func readAll(t *testing.T, e *Engine, chunk int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, chunk)
	for off := int64(0); ; {
		n, err := e.ReadAt(context.Background(), buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

var smallOpts = Options{BlockSize: 64 * KiB, MaxPrefetch: 1 * MiB, Concurrency: 4, MinPartSize: 32 * KiB}

func TestSequentialReadPrefetchesAndMatches(t *testing.T) {
	m := newMem(8*MiB + 123)
	opts := smallOpts
	e := New(m, int64(len(m.data)), &opts)
	defer e.Close()
	got := readAll(t, e, 64*KiB)
	if !bytes.Equal(got, m.data) {
		t.Fatal("sequential read differs from source")
	}
	s := e.Stats()
	if s.Asked != int64(len(m.data)) {
		t.Fatalf("Asked %d", s.Asked)
	}
	// Prefetch starts on the 3rd read: all but the first three reads (and
	// whatever the very first window did not cover) come from prefetch.
	if s.Served < int64(len(m.data))-4*64*KiB {
		t.Fatalf("served from prefetch %d of %d", s.Served, len(m.data))
	}
	// Nothing is fetched twice on a clean sequential run.
	if s.Fetched > int64(len(m.data))+opts.MaxPrefetch || s.Fetched != m.bytes.Load() {
		t.Fatalf("fetched %d (fetcher saw %d) for %d", s.Fetched, m.bytes.Load(), len(m.data))
	}
	// Parallel parts: far fewer requests than reads would be with 1 per
	// read, but more than one per window.
	if s.Requests >= int64(len(m.data)/(64*KiB)) {
		t.Fatalf("%d requests: prefetch did not batch", s.Requests)
	}
}

func TestRandomReadsFetchExactlyTheirBytes(t *testing.T) {
	m := newMem(4 * MiB)
	e := New(m, int64(len(m.data)), &smallOpts)
	defer e.Close()
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4*KiB)
	for range 200 {
		off := r.Int64N(int64(len(m.data)) - 4*KiB)
		if _, err := e.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, m.data[off:off+4*KiB]) {
			t.Fatal("mismatch")
		}
	}
	s := e.Stats()
	if s.Fetched != s.Asked || s.Prefetched != 0 {
		t.Fatalf("random reads fetched %d for %d asked (prefetched %d)", s.Fetched, s.Asked, s.Prefetched)
	}
}

// Two reads at a time (needed block + next block), as a readahead cache
// issues them, never start prefetching.
func TestReadaheadPairsDoNotPrefetch(t *testing.T) {
	m := newMem(4 * MiB)
	e := New(m, int64(len(m.data)), &smallOpts)
	defer e.Close()
	buf := make([]byte, 64*KiB)
	for _, blk := range []int64{10, 40, 3, 25, 50, 7} {
		for _, b := range []int64{blk, blk + 1} {
			if _, err := e.ReadAt(context.Background(), buf, b*64*KiB); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s := e.Stats(); s.Prefetched != 0 {
		t.Fatalf("prefetched %d bytes for readahead pairs", s.Prefetched)
	}
}

func TestReadZeroDoesNotBreakStreak(t *testing.T) {
	m := newMem(2 * MiB)
	e := New(m, int64(len(m.data)), &smallOpts)
	defer e.Close()
	buf := make([]byte, 64*KiB)
	for i := range int64(3) {
		if n, err := e.ReadAt(context.Background(), nil, 999); n != 0 || err != nil {
			t.Fatalf("read(0) = %d, %v", n, err)
		}
		if _, err := e.ReadAt(context.Background(), buf, i*64*KiB); err != nil {
			t.Fatal(err)
		}
	}
	if e.Stats().Prefetched == 0 {
		t.Fatal("read(0) between sequential reads stopped prefetching")
	}
}

func TestSeekDropsUnusablePrefetch(t *testing.T) {
	m := newMem(8 * MiB)
	e := New(m, int64(len(m.data)), &smallOpts)
	buf := make([]byte, 64*KiB)
	for i := range int64(6) {
		e.ReadAt(context.Background(), buf, i*64*KiB)
	}
	if _, err := e.ReadAt(context.Background(), buf, 6*MiB); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, m.data[6*MiB:6*MiB+64*KiB]) {
		t.Fatal("mismatch after seek")
	}
	e.Close()
	s := e.Stats()
	if s.Wasted == 0 || s.Wasted > s.Prefetched-s.Served {
		t.Fatalf("wasted %d, prefetched %d, served %d", s.Wasted, s.Prefetched, s.Served)
	}
	if e.opts.Buffers.InUse() != 0 {
		t.Fatalf("%d bytes of buffers not returned", e.opts.Buffers.InUse())
	}
}

func TestBudgetNeverExceeded(t *testing.T) {
	m := newMem(16 * MiB)
	pool := directbuf.NewPool(512 * KiB) // less than MaxPrefetch
	opts := smallOpts
	opts.MaxPrefetch = 4 * MiB
	opts.Buffers = pool
	// Several engines share the budget.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			e := New(m, int64(len(m.data)), &opts)
			defer e.Close()
			if got := readAll(t, e, 32*KiB); !bytes.Equal(got, m.data) {
				t.Error("mismatch")
			}
			if e.Stats().Prefetched == 0 {
				t.Error("no prefetch at all under a small budget")
			}
		})
	}
	wg.Wait()
	if hw := pool.HighWater(); hw > pool.Budget() || hw == 0 {
		t.Fatalf("high water %d, budget %d", hw, pool.Budget())
	}
}

func TestErrorReachesTheReadThatNeedsIt(t *testing.T) {
	m := newMem(4 * MiB)
	boom := errors.New("boom")
	m.failAt, m.failErr = 2*MiB+100, boom
	e := New(m, int64(len(m.data)), &smallOpts)
	defer e.Close()
	buf := make([]byte, 64*KiB)
	var off int64
	for ; off < 2*MiB; off += 64 * KiB {
		if _, err := e.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatalf("read at %d before the bad bytes failed: %v", off, err)
		}
	}
	if _, err := e.ReadAt(context.Background(), buf, off); !errors.Is(err, boom) {
		t.Fatalf("read over the bad bytes = %v, want boom", err)
	}
	// The source heals; the same read now succeeds (the failed prefetch was
	// not kept).
	m.mu.Lock()
	m.failAt = -1
	m.mu.Unlock()
	if _, err := e.ReadAt(context.Background(), buf, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, m.data[off:off+64*KiB]) {
		t.Fatal("mismatch after heal")
	}
}

func TestReadPastEndAndBadOffsets(t *testing.T) {
	m := newMem(1000)
	e := New(m, 1000, nil)
	defer e.Close()
	buf := make([]byte, 100)
	if n, err := e.ReadAt(context.Background(), buf, 950); n != 50 || err != io.EOF || !bytes.Equal(buf[:50], m.data[950:]) {
		t.Fatalf("short read at end = %d, %v", n, err)
	}
	if n, err := e.ReadAt(context.Background(), buf, 1000); n != 0 || err != io.EOF {
		t.Fatalf("read at end = %d, %v", n, err)
	}
	if _, err := e.ReadAt(context.Background(), buf, -1); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("negative offset = %v", err)
	}
}

func TestContextCancelWhileWaiting(t *testing.T) {
	m := newMem(4 * MiB)
	m.setGate(make(chan struct{}))
	e := New(m, int64(len(m.data)), &smallOpts)
	defer e.Close()
	testkit.CancelMidCall(t, func() bool { return m.requests.Load() > 0 }, func(ctx context.Context) error {
		_, err := e.ReadAt(ctx, make([]byte, 10), 0)
		return err
	})
}

// Close while prefetches are in flight cancels them, returns the buffers
// and leaks no goroutine (goleak checks in TestMain); readers blocked on
// prefetched data get fs.ErrClosed.
func TestCloseRacesInFlightPrefetch(t *testing.T) {
	src := newMem(4 * MiB).data
	for range 20 {
		m := &memFetcher{data: src, failAt: -1}
		e := New(m, int64(len(m.data)), &smallOpts)
		buf := make([]byte, 64*KiB)
		for i := range int64(3) {
			e.ReadAt(context.Background(), buf, i*64*KiB)
		}
		m.setGate(make(chan struct{})) // later fetches hang until cancelled
		errc := make(chan error, 1)
		go func() {
			_, err := e.ReadAt(context.Background(), make([]byte, 512*KiB), 3*64*KiB)
			errc <- err
		}()
		e.Close()
		if err := <-errc; err != nil && !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("read racing Close = %v", err)
		}
		if _, err := e.ReadAt(context.Background(), buf, 0); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("read after Close = %v", err)
		}
		if e.opts.Buffers.InUse() != 0 {
			t.Fatal("buffers not returned after Close")
		}
	}
}

func TestDisabledNeverPrefetches(t *testing.T) {
	m := newMem(2 * MiB)
	opts := smallOpts
	opts.Disabled = true
	e := New(m, int64(len(m.data)), &opts)
	defer e.Close()
	if got := readAll(t, e, 64*KiB); !bytes.Equal(got, m.data) {
		t.Fatal("mismatch")
	}
	if s := e.Stats(); s.Prefetched != 0 || s.Fetched != s.Asked {
		t.Fatalf("%+v", s)
	}
}

func TestLargeDirectReadSplitsIntoParts(t *testing.T) {
	m := newMem(4 * MiB)
	e := New(m, int64(len(m.data)), &smallOpts)
	defer e.Close()
	buf := make([]byte, 4*MiB)
	if _, err := e.ReadAt(context.Background(), buf, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, m.data) {
		t.Fatal("mismatch")
	}
	if r := m.requests.Load(); r != int64(smallOpts.Concurrency) {
		t.Fatalf("%d requests, want %d parts", r, smallOpts.Concurrency)
	}
}

// ReadDirect splits a whole range into Concurrency parts and leaves the
// detector alone: a following read at 0 is still the first of a run.
func TestReadDirect(t *testing.T) {
	m := newMem(2 * MiB)
	e := New(m, int64(len(m.data)), &smallOpts)
	defer e.Close()
	buf := make([]byte, MiB)
	if err := e.ReadDirect(context.Background(), buf, MiB); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, m.data[MiB:]) {
		t.Fatal("mismatch")
	}
	if s := e.Stats(); s.Requests != int64(smallOpts.Concurrency) || s.Asked != MiB || s.Fetched != MiB || e.det.streak != 0 {
		t.Fatalf("stats %+v, streak %d", s, e.det.streak)
	}
	if err := e.ReadDirect(context.Background(), buf, MiB+1); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("range past the end = %v", err)
	}
	e.Close()
	if err := e.ReadDirect(context.Background(), buf, 0); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("after Close = %v", err)
	}
}

// DropPrefetched gives the budget back: the windows filled or in flight
// (held at a gate) are let go, InUse back to 0 without a read or a Close,
// and the read after it still returns the object's bytes.
func TestDropPrefetchedGivesTheBudgetBack(t *testing.T) {
	m := newMem(8 * MiB)
	opts := smallOpts
	e := New(m, int64(len(m.data)), &opts)
	defer e.Close()
	buf := make([]byte, 64*KiB)
	for i := range int64(6) {
		if _, err := e.ReadAt(context.Background(), buf, i*64*KiB); err != nil {
			t.Fatal(err)
		}
	}
	// Windows topped up from now on (as bytes arrive) stay in flight. No
	// read comes before the drop: one could need a gated window.
	gate := make(chan struct{})
	m.setGate(gate)
	if e.opts.Buffers.InUse() == 0 {
		t.Fatal("no prefetched window to drop")
	}
	e.DropPrefetched()
	testkit.WaitFor(t, "the dropped windows' buffers to return", func() bool { return e.opts.Buffers.InUse() == 0 })
	close(gate)
	rest := make([]byte, len(m.data)-6*64*KiB)
	if _, err := e.ReadAt(context.Background(), rest, 6*64*KiB); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, m.data[6*64*KiB:]) {
		t.Fatal("the read after DropPrefetched differs from the source")
	}
}
