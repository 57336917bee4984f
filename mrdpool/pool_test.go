package mrdpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/byterange"
	"github.com/zonalread/zonalread/internal/testkit"
)

// fakeBackend serves an in-memory object. Its downloaders can be told to
// break, to hold ranges until released, and count what they see.
type fakeBackend struct {
	data      []byte
	shareable bool
	openDelay chan struct{} // when non-nil, Open waits for it to close

	opens, adds atomic.Int64
	started     atomic.Int64 // Open calls, counted before openDelay
	mu          sync.Mutex
	downloaders []*fakeDownloader
	hold        chan struct{} // when non-nil, ranges wait for it
	failNext    error         // the next range fails after half its bytes
	dropAll     bool          // ranges never call back, like a stalled MRD range
	breakNext   bool          // the next range also breaks its downloader
}

func (b *fakeBackend) Shareable() bool { return b.shareable }

func (b *fakeBackend) Open(ctx context.Context) (Downloader, ObjectInfo, error) {
	b.started.Add(1)
	if b.openDelay != nil {
		select {
		case <-b.openDelay:
		case <-ctx.Done():
			return nil, ObjectInfo{}, ctx.Err()
		}
	}
	b.opens.Add(1)
	d := &fakeDownloader{b: b}
	b.mu.Lock()
	b.downloaders = append(b.downloaders, d)
	b.mu.Unlock()
	return d, ObjectInfo{Size: int64(len(b.data)), Generation: 7}, nil
}

type fakeDownloader struct {
	b      *fakeBackend
	broken atomic.Pointer[error]
	closed atomic.Bool
	ranges atomic.Int64
	wg     sync.WaitGroup
}

func (d *fakeDownloader) Add(ctx context.Context, w io.Writer, off, n int64, done func(error)) {
	d.b.adds.Add(1)
	d.ranges.Add(1)
	if !byterange.Within(off, n, int64(len(d.b.data))) {
		panic(fmt.Sprintf("range of %d bytes at %d reached the downloader", n, off))
	}
	d.b.mu.Lock()
	if d.b.dropAll {
		d.b.mu.Unlock()
		return
	}
	hold, fail, brk := d.b.hold, d.b.failNext, d.b.breakNext
	d.b.failNext, d.b.breakNext = nil, false
	d.b.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if hold != nil {
			<-hold
		}
		if fail != nil {
			w.Write(d.b.data[off : off+n/2])
			if brk {
				d.broken.Store(&fail)
			}
			done(fail)
			return
		}
		if d.closed.Load() {
			done(errors.New("closed"))
			return
		}
		// Write in pieces like a stream would.
		for p := d.b.data[off : off+n]; len(p) > 0; {
			k := min(len(p), 1000)
			w.Write(p[:k])
			p = p[k:]
		}
		done(nil)
	}()
}

func (d *fakeDownloader) Err() error {
	if e := d.broken.Load(); e != nil {
		return *e
	}
	return nil
}

func (d *fakeDownloader) Close() error {
	d.closed.Store(true)
	d.wg.Wait()
	if e := d.broken.Load(); e != nil {
		return *e
	}
	return nil
}

func TestLazyNoIOUntilFirstUse(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(100, 1)}
	p := New(b, nil)
	if b.opens.Load() != 0 {
		t.Fatal("New opened a downloader")
	}
	buf := make([]byte, 10)
	if _, err := p.ReadAt(context.Background(), buf, 5); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, b.data[5:15]) || b.opens.Load() != 1 {
		t.Fatalf("opens = %d", b.opens.Load())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentFirstCallersOpenOne(t *testing.T) {
	gate := make(chan struct{})
	b := &fakeBackend{data: testkit.RandomBytes(100, 1), openDelay: gate}
	p := New(b, &Options{PoolSize: 4})
	defer p.Close()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := p.Info(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	// Let the callers pile up on the first open, then let it finish.
	for p.Stats().Waits == 0 {
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	if n := b.opens.Load(); n != 1 {
		t.Fatalf("%d downloaders opened by concurrent first callers, want 1", n)
	}
}

// With Warm, the first open starts the others at once: all Warm opens are
// in flight together (none has finished when the last starts), and the
// ranges that follow find their downloaders open.
func TestWarmOpensAlongsideFirst(t *testing.T) {
	gate := make(chan struct{})
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), shareable: true, openDelay: gate}
	p := New(b, &Options{PoolSize: 8, Warm: 4})
	defer p.Close()
	info := make(chan error, 1)
	go func() {
		_, err := p.Info(context.Background())
		info <- err
	}()
	testkit.WaitFor(t, "4 opens in flight together", func() bool { return b.started.Load() == 4 })
	close(gate)
	if err := <-info; err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the warm opens to finish", func() bool { return p.Stats().Opened == 4 })
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			l, err := p.acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Release()
			if !l.owner {
				t.Errorf("acquire %d shared a busy downloader while a warm one was free", i)
			}
		})
	}
	wg.Wait()
	if n := b.started.Load(); n != 4 {
		t.Fatalf("%d opens, want the 4 warm ones", n)
	}
}

// Close does not wait for warm opens the server never answers: they end
// with the pool (the package's leak check sees no goroutine left).
func TestCloseEndsWarmOpens(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), shareable: true, openDelay: make(chan struct{})}
	p := New(b, &Options{PoolSize: 8, Warm: 3})
	ctx, cancel := context.WithCancel(context.Background())
	info := make(chan error, 1)
	go func() {
		_, err := p.Info(ctx)
		info <- err
	}()
	testkit.WaitFor(t, "3 opens in flight", func() bool { return b.started.Load() == 3 })
	cancel()
	if err := <-info; !errors.Is(err, context.Canceled) {
		t.Fatalf("Info = %v, want context.Canceled", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.opens.Load(); n != 0 {
		t.Fatalf("%d opens finished though the server never answered", n)
	}
}

func TestGrowsToPoolSizeThenShares(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(100, 1), shareable: true}
	p := New(b, &Options{PoolSize: 3})
	defer p.Close()
	var leases []*lease
	for range 9 {
		l, err := p.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	if n := b.opens.Load(); n != 3 {
		t.Fatalf("opened %d, want 3", n)
	}
	// Round-robin: each downloader carries three leases.
	count := map[Downloader]int{}
	for _, l := range leases {
		count[l.Downloader()]++
	}
	for d, c := range count {
		if c != 3 {
			t.Fatalf("downloader %p has %d leases, want 3", d, c)
		}
	}
	if s := p.Stats(); s.Shared != 6 {
		t.Fatalf("Shared = %d, want 6", s.Shared)
	}
	for _, l := range leases {
		l.Release()
	}
}

// A burst of ranges that finds the pool full while its opens are still in
// flight waits for them and spreads over every downloader, rather than
// piling onto the one open so far (48 ranges of a ReadRanges on a fresh
// file all went to one stream: 26% of the link).
func TestBurstSpreadsOverOpeningDownloaders(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(100, 1), shareable: true}
	p := New(b, &Options{PoolSize: 4})
	defer p.Close()
	first, err := p.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	b.openDelay = gate // the next opens wait
	leases := make(chan *lease, 15)
	for range 15 {
		go func() {
			l, err := p.acquire(context.Background())
			if err != nil {
				t.Error(err)
			}
			leases <- l
		}()
	}
	testkit.WaitFor(t, "3 more opens in flight", func() bool { return b.started.Load() == 4 })
	testkit.WaitFor(t, "the 12 other callers to wait or share", func() bool {
		s := p.Stats()
		return s.Waits+s.Shared == 12
	})
	close(gate)
	count := map[Downloader]int{first.Downloader(): 1}
	all := []*lease{first}
	for range 15 {
		l := <-leases
		if l == nil {
			t.FailNow()
		}
		count[l.Downloader()]++
		all = append(all, l)
	}
	for d, c := range count {
		if c != 4 {
			t.Errorf("downloader %p carries %d of 16 leases, want 4 (%v)", d, c, count)
		}
	}
	for _, l := range all {
		l.Release()
	}
}

// A caller waiting for an open in flight is not stranded when that open
// fails: it opens a downloader itself.
func TestWaiterOpensWhenTheOpenItWaitedForFails(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(100, 1), shareable: true}
	p := New(b, &Options{PoolSize: 2})
	defer p.Close()
	first, err := p.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	gate := make(chan struct{})
	b.openDelay = gate
	actx, cancelA := context.WithCancel(context.Background())
	aErr := make(chan error, 1)
	go func() {
		l, err := p.acquire(actx)
		if err == nil {
			l.Release()
		}
		aErr <- err
	}()
	testkit.WaitFor(t, "the second open in flight", func() bool { return b.started.Load() == 2 })
	bLease := make(chan *lease, 1)
	go func() {
		l, err := p.acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		bLease <- l
	}()
	testkit.WaitFor(t, "the third caller to wait", func() bool { return p.Stats().Waits == 1 })
	cancelA()
	if err := <-aErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled opener: %v, want context.Canceled", err)
	}
	testkit.WaitFor(t, "the waiter to open in its place", func() bool { return b.started.Load() == 3 })
	close(gate)
	l := <-bLease
	if l == nil {
		t.FailNow()
	}
	if !l.owner || l.Downloader() == first.Downloader() {
		t.Errorf("waiter got a shared lease on the first downloader, want its own")
	}
	l.Release()
}

func TestWaitsWhenBackendCannotShare(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(100, 1)}
	p := New(b, &Options{PoolSize: 2})
	defer p.Close()
	l1, _ := p.acquire(context.Background())
	l2, _ := p.acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on a full pool = %v, want DeadlineExceeded", err)
	}
	got := make(chan *lease)
	go func() {
		l, err := p.acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	l1.Release()
	l3 := <-got
	if l3.Downloader() != l1.Downloader() {
		t.Fatal("waiter did not get the released downloader")
	}
	if b.opens.Load() != 2 {
		t.Fatalf("opened %d", b.opens.Load())
	}
	l2.Release()
	l3.Release()
}

func TestBrokenDownloaderReplaced(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(10000, 1), shareable: true}
	p := New(b, &Options{PoolSize: 1, RetryBackoff: time.Microsecond})
	defer p.Close()
	b.failNext, b.breakNext = errors.New("stream reset"), true
	buf := make([]byte, 5000)
	if _, err := p.ReadAt(context.Background(), buf, 1000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, b.data[1000:6000]) {
		t.Fatal("bytes differ after resume")
	}
	s := p.Stats()
	if b.opens.Load() != 2 || s.Replaced != 1 || s.Retries != 1 {
		t.Fatalf("opens %d, stats %+v", b.opens.Load(), s)
	}
	if !b.downloaders[0].closed.Load() {
		t.Fatal("broken downloader not closed")
	}
}

func TestChecksumFailureRefetchesAttempt(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(10000, 1)}
	p := New(b, &Options{RetryBackoff: time.Microsecond})
	defer p.Close()
	b.failNext = fmt.Errorf("%w: test", ErrChecksum)
	buf := make([]byte, 4000)
	if _, err := p.ReadAt(context.Background(), buf, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, b.data[:4000]) {
		t.Fatal("bytes differ")
	}
	// Nothing of the bad attempt was kept: the retry asked for all 4000.
	if s := p.Stats(); s.Bytes != 4000 || s.Retries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRetryBudgetEndsInError(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1)}
	p := New(b, &Options{Retries: -1})
	defer p.Close()
	boom := errors.New("boom")
	b.failNext = boom
	buf := make([]byte, 100)
	n, err := p.ReadAt(context.Background(), buf, 0)
	if !errors.Is(err, boom) || n != 50 || !bytes.Equal(buf[:n], b.data[:n]) {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

func TestRangeValidatedBeforeAdd(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(100, 1)}
	p := New(b, nil)
	defer p.Close()
	for _, c := range []struct{ off, n int64 }{{-1, 1}, {90, 11}, {101, 0}, {100, 1}} {
		_, err := p.ReadAt(context.Background(), make([]byte, c.n), c.off)
		if !errors.Is(err, ErrRange) {
			t.Errorf("ReadAt(%d, %d) = %v, want ErrRange", c.off, c.n, err)
		}
	}
	if n, err := p.ReadAt(context.Background(), nil, 100); n != 0 || err != nil {
		t.Fatalf("empty read at end = %d, %v", n, err)
	}
	if b.adds.Load() != 0 {
		t.Fatalf("%d ranges reached the downloader", b.adds.Load())
	}
}

func TestCancelDetachesWriter(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), hold: make(chan struct{})}
	p := New(b, &Options{PoolSize: 1})
	buf := make([]byte, 1000)
	testkit.CancelMidCall(t, func() bool { return b.adds.Load() > 0 }, func(ctx context.Context) error {
		_, err := p.ReadAt(ctx, buf, 0)
		return err
	})
	clear(buf)
	close(b.hold) // the range completes after the caller gave up
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range buf {
		if c != 0 {
			t.Fatal("downloader wrote into the caller's buffer after cancellation")
		}
	}
}

func TestCloseJoinsErrorsAndIsIdempotent(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(100, 1), shareable: true}
	p := New(b, &Options{PoolSize: 2})
	l1, _ := p.acquire(context.Background())
	l2, _ := p.acquire(context.Background())
	e1, e2 := errors.New("e1"), errors.New("e2")
	b.downloaders[0].broken.Store(&e1)
	b.downloaders[1].broken.Store(&e2)
	err := p.Close()
	if !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Fatalf("Close = %v, want both errors", err)
	}
	if err2 := p.Close(); err2 != err {
		t.Fatalf("second Close = %v", err2)
	}
	l1.Release()
	l2.Release()
	if _, err := p.acquire(context.Background()); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Acquire after Close = %v", err)
	}
	if _, err := p.ReadAt(context.Background(), make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("ReadAt after Close = %v", err)
	}
}

func TestDoubleReleasePanics(t *testing.T) {
	p := New(&fakeBackend{data: testkit.RandomBytes(10, 1)}, nil)
	defer p.Close()
	l, _ := p.acquire(context.Background())
	l.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	l.Release()
}

func TestConcurrentReadsMatchSource(t *testing.T) {
	for _, share := range []bool{false, true} {
		b := &fakeBackend{data: testkit.RandomBytes(1<<20, 1), shareable: share}
		p := New(b, &Options{PoolSize: 3})
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range 20 {
					off := int64((g*7919 + i*104729) % (1<<20 - 5000))
					buf := make([]byte, 1+(g*i)%5000)
					if _, err := p.ReadAt(context.Background(), buf, off); err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(buf, b.data[off:off+int64(len(buf))]) {
						t.Errorf("mismatch at %d", off)
					}
				}
			})
		}
		wg.Wait()
		if n := b.opens.Load(); n > 3 {
			t.Fatalf("opened %d > PoolSize", n)
		}
		p.Close()
	}
}

// A real MRD never calls back for a range that stalls or was in flight when
// it closed: a cancelled read must not leave a goroutine waiting for that
// callback after the pool is closed (goleak checks in TestMain).
func TestLostCallbackDoesNotLeak(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), shareable: true, dropAll: true}
	p := New(b, nil)
	testkit.CancelMidCall(t, func() bool { return b.adds.Load() > 0 }, func(ctx context.Context) error {
		_, err := p.ReadAt(ctx, make([]byte, 100), 0)
		return err
	})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// Warm, called once the first open has told the caller the object is
// large, opens downloaders up to n (at most PoolSize) in the background;
// on a closed pool it opens nothing.
func TestWarmAfterFirstOpen(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), shareable: true}
	p := New(b, &Options{PoolSize: 5})
	if _, err := p.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := b.started.Load(); n != 1 {
		t.Fatalf("%d opens before Warm, want 1", n)
	}
	p.Warm(100)
	testkit.WaitFor(t, "the pool to open up to PoolSize", func() bool { return p.Stats().Opened == 5 })
	p.Warm(100)
	if n := b.started.Load(); n != 5 {
		t.Fatalf("%d opens after warming a full pool, want 5", n)
	}
	p.Close()
	q := New(b, &Options{PoolSize: 5})
	q.Close()
	q.Warm(3)
	if n := b.started.Load(); n != 5 {
		t.Fatalf("Warm on a closed pool opened %d", n-5)
	}
}
