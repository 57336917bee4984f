package dataset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zonalread/zonalread/internal/testkit"
)

// fakeFooters is a footer source for driving a metadataFetcher directly:
// resolving file i waits for gate i (slow on purpose), then "opens" it;
// the fake counts files open and closed.
type fakeFooters struct {
	gates        []chan struct{}
	open, closed atomic.Int64
	started      atomic.Int64
}

func newFakeFooters(n int) *fakeFooters {
	f := &fakeFooters{gates: make([]chan struct{}, n)}
	for i := range f.gates {
		f.gates[i] = make(chan struct{})
	}
	return f
}

type closeCounter struct{ f *fakeFooters }

func (c closeCounter) Close() error {
	c.f.open.Add(-1)
	c.f.closed.Add(1)
	return nil
}

func (f *fakeFooters) resolve(ctx context.Context, i int) footerResult {
	f.started.Add(1)
	select {
	case <-f.gates[i]:
	case <-ctx.Done():
		return footerResult{idx: i, err: ctx.Err()}
	}
	f.open.Add(1)
	return footerResult{idx: i, f: &footer{src: &source{name: fmt.Sprint(i), c: closeCounter{f}}}}
}

// The threaded fetcher resolves off the caller (request returns at once),
// delivers in file order whatever order the footers resolve in, and on
// close stops what runs and closes the files of footers never delivered.
func TestThreadedFetcherOrderAndClose(t *testing.T) {
	src := newFakeFooters(3)
	f := newMetadataFetcher(context.Background(), Threaded, src.resolve)
	if f.lookahead() != footerLookahead {
		t.Fatalf("lookahead %d", f.lookahead())
	}
	for i := range 3 {
		if _, ok := f.request(i); ok {
			t.Fatal("threaded fetcher resolved on the caller's goroutine")
		}
	}
	testkit.WaitFor(t, "3 footer reads in flight", func() bool { return src.started.Load() == 3 })
	close(src.gates[1]) // file 1 resolves first...
	testkit.WaitFor(t, "file 1 open", func() bool { return src.open.Load() == 1 })
	select {
	case r := <-f.results():
		t.Fatalf("file %d delivered before file 0", r.idx)
	default:
	}
	close(src.gates[0]) // ...but file 0 is delivered first
	for want := range 2 {
		if r := <-f.results(); r.idx != want || r.err != nil {
			t.Fatalf("delivered %d (%v), want %d", r.idx, r.err, want)
		}
	}
	// File 2 is still held: close cancels it; the two delivered files are
	// the caller's to close, and nothing else stays open.
	f.close()
	if n := src.open.Load(); n != 2 || src.closed.Load() != 0 {
		t.Fatalf("after close: %d open, %d closed by the fetcher, want the 2 delivered open", n, src.closed.Load())
	}
}

// A footer resolved but never delivered is closed by close.
func TestThreadedFetcherClosesUndelivered(t *testing.T) {
	src := newFakeFooters(1)
	close(src.gates[0])
	f := newMetadataFetcher(context.Background(), Threaded, src.resolve)
	f.request(0)
	testkit.WaitFor(t, "the footer resolved", func() bool { return src.open.Load() == 1 })
	f.close()
	if src.open.Load() != 0 || src.closed.Load() != 1 {
		t.Fatalf("%d open, %d closed after close", src.open.Load(), src.closed.Load())
	}
}

// The inline fetcher resolves on the caller's goroutine, one file ahead.
func TestInlineFetcher(t *testing.T) {
	src := newFakeFooters(1)
	close(src.gates[0])
	f := newMetadataFetcher(context.Background(), Inline, src.resolve)
	if f.lookahead() != 1 || f.results() != nil {
		t.Fatalf("inline: lookahead %d, results %v", f.lookahead(), f.results())
	}
	r, ok := f.request(0)
	if !ok || r.idx != 0 || r.f == nil {
		t.Fatalf("inline request = %+v, %v", r, ok)
	}
	r.f.src.c.Close()
	f.close()
}

// openCounter counts the files of an FS open at once.
type openCounter struct {
	fs.FS
	mu        sync.Mutex
	open, max int
}

type countedFile struct {
	fs.File
	c *openCounter
}

func (c *openCounter) Glob(pattern string) ([]string, error) { return fs.Glob(c.FS, pattern) }

func (c *openCounter) Open(name string) (fs.File, error) {
	f, err := c.FS.Open(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.open++
	c.max = max(c.max, c.open)
	c.mu.Unlock()
	return &countedFile{File: f, c: c}, nil
}

func (f *countedFile) Close() error {
	f.c.mu.Lock()
	f.c.open--
	f.c.mu.Unlock()
	return f.File.Close()
}

func (f *countedFile) ReadAt(p []byte, off int64) (int, error) {
	ra, ok := f.File.(interface {
		ReadAt([]byte, int64) (int, error)
	})
	if !ok {
		return 0, errors.New("not a ReaderAt")
	}
	return ra.ReadAt(p, off)
}

// The look-ahead is bounded in both modes: over 12 files read by one
// worker, at most lookahead files are open beyond the ones being read (up
// to 3 per worker: one decoding, one fetched and waiting, one fetching:
// see aheadOf), and each file is closed when its last task is done. Both
// modes give the same rows.
func TestMetadataLookaheadBounded(t *testing.T) {
	files := map[string][]byte{}
	for i := range int64(12) {
		files[fmt.Sprintf("f/%02d.parquet", i)] = writeParquet(t, i*500, 500, 250)
	}
	base, _ := memFS(t, files)
	for _, mode := range []MetadataFetch{Inline, Threaded} {
		c := &openCounter{FS: base}
		ds, err := ReadParquet(c, "f/*.parquet", &ReadOptions{MetadataFetch: mode, Workers: 1, TargetBlockBytes: 1, PreserveOrder: true})
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.max = c.open // ReadParquet's own footer reads are done
		c.mu.Unlock()
		checkRows(t, collect(t, ds.Iter(context.Background())), idRange(0, 6000), "all")
		lookahead := map[MetadataFetch]int{Inline: 1, Threaded: footerLookahead}[mode]
		if c.max > lookahead+3 {
			t.Errorf("%s: %d files open at once, look-ahead %d", mode, c.max, lookahead)
		}
		if c.open != 0 {
			t.Errorf("%s: %d files left open", mode, c.open)
		}
	}
}
