package dataset

import (
	"context"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zonalread/zonalread/internal/testkit"
)

// waitFor polls cond (with yields) until it holds; it fails the test after
// a generous deadline, which only a hang reaches. It never asserts on time.
// A consumer that stops consuming stops new reads: bytes in flight stay
// under the budget (plus the one task that may always run), and the rows
// are all there once it resumes.
func TestMemoryBudgetBackpressure(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	// Find the size of one block first.
	probe, _ := ReadParquet(fsys, "d/part-0.parquet", &ReadOptions{TargetBlockBytes: 1})
	it := probe.Iter(context.Background())
	if !it.Next() {
		t.Fatal(it.Err())
	}
	block := it.Block().Meta.SizeBytes
	it.Close()

	budget := 3 * block
	ds, _ := ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1, MemoryBudget: budget, Workers: 4, PreserveOrder: true})
	it = ds.Iter(context.Background())
	if !it.Next() {
		t.Fatal(it.Err())
	}
	// The consumer sleeps on its first block: the loop must stall on the
	// budget instead of reading ahead.
	testkit.WaitFor(t, "a budget stall", func() bool { return it.Stats().BudgetStalls > 0 })
	s := it.Stats()
	if s.BudgetHighWater > budget+2*block {
		t.Fatalf("bytes in flight reached %d, budget %d (block %d)", s.BudgetHighWater, budget, block)
	}
	if s.Read.Tasks >= 30 {
		t.Fatal("a sleeping consumer did not stop the reads")
	}
	rows := recordRows(t, it.Block().Record)
	for it.Next() {
		rows = append(rows, recordRows(t, it.Block().Record)...)
	}
	it.Close()
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows, idRange(0, 30000), "all")
	if hw := it.Stats().BudgetHighWater; hw > budget+2*block {
		t.Fatalf("high water %d over budget %d", hw, budget)
	}

	// A fast consumer with room to spare is never throttled.
	ds, _ = ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1, MemoryBudget: 1 << 30})
	it = ds.Iter(context.Background())
	collect(t, it)
	if s := it.Stats(); s.BudgetStalls != 0 || s.Read.TimeBlocked != 0 {
		t.Fatalf("fast consumer throttled: %+v", s)
	}
}

// gatedFS holds the opening of one file, once armed, until released: an
// execution opens a file to resolve its footer (the parsed footer itself
// is cached by ReadParquet).
type gatedFS struct {
	fs.FS
	gated   string
	armed   atomic.Bool
	reached chan struct{} // closed when the gated open starts
	release chan struct{}
	once    sync.Once
}

func (g *gatedFS) Open(name string) (fs.File, error) {
	if name == g.gated && g.armed.Load() {
		g.once.Do(func() { close(g.reached) })
		<-g.release
	}
	return g.FS.Open(name)
}

// With a footer source made slow on purpose, the Threaded mode keeps the
// scheduling loop going — blocks of the other file reach the consumer and
// the loop's iteration count grows while the footer is held — whereas
// Inline blocks the loop inside the footer read (its count does not move
// and nothing is delivered until the release). Both give identical rows.
func TestMetadataFetchThreadedVsInline(t *testing.T) {
	files := map[string][]byte{
		"a.parquet": writeParquet(t, 0, 3000, 1000),
		"b.parquet": writeParquet(t, 3000, 3000, 1000),
	}
	base, _ := memFS(t, files)
	var results [2][]row
	for i, mode := range []MetadataFetch{Threaded, Inline} {
		g := &gatedFS{FS: base, gated: "b.parquet", reached: make(chan struct{}), release: make(chan struct{})}
		ds, err := ReadParquet(g, "*.parquet", &ReadOptions{MetadataFetch: mode, Workers: 1, TargetBlockBytes: 1, PreserveOrder: true})
		if err != nil {
			t.Fatal(err)
		}
		g.armed.Store(true)
		it := ds.Iter(context.Background())
		var delivered atomic.Int64
		var released atomic.Bool
		var deliveredBeforeRelease atomic.Int64
		rowsc := make(chan []row)
		go func() {
			var rows []row
			for it.Next() {
				if !released.Load() {
					deliveredBeforeRelease.Add(1)
				}
				delivered.Add(1)
				rows = append(rows, recordRows(t, it.Block().Record)...)
			}
			rowsc <- rows
		}()
		<-g.reached
		atHold := it.Stats().LoopIterations
		if mode == Threaded {
			// All of a.parquet arrives while b's footer is held: the loop
			// went round for each task result and each hand-over (at least
			// 6 iterations) with that footer still pending.
			testkit.WaitFor(t, "a.parquet's blocks", func() bool { return delivered.Load() == 3 })
			if s := it.Stats(); s.FootersPending != 1 || s.LoopIterations < 6 {
				t.Fatalf("threaded: %d loop iterations, %d footers pending while b's footer was held", s.LoopIterations, s.FootersPending)
			}
		} else {
			// The loop is inside the held read: its count cannot move.
			// (Nothing to wait for: if it could move, this would be racy in
			// the other direction, and the delivered count below would show
			// it too.)
			if n := it.Stats().LoopIterations; n != atHold {
				t.Fatalf("inline: loop iterated while blocked on the footer (%d -> %d)", atHold, n)
			}
		}
		beforeRelease := delivered.Load()
		released.Store(true)
		close(g.release)
		results[i] = <-rowsc
		it.Close()
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		switch mode {
		case Threaded:
			if beforeRelease != 3 {
				t.Fatalf("threaded: %d blocks before release, want 3", beforeRelease)
			}
		case Inline:
			// Inline fetched b's footer right after planning a's first task
			// (Workers 1): at most the blocks already handed over got out.
			if deliveredBeforeRelease.Load() == 3 {
				t.Fatal("inline: every block of a.parquet was delivered while the loop was blocked")
			}
		}
	}
	checkRows(t, results[0], idRange(0, 6000), "all")
	checkRows(t, results[1], idRange(0, 6000), "all")
}

func TestMetadataFetchFromEnv(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	mode := func(o *ReadOptions) MetadataFetch {
		t.Helper()
		ds, err := ReadParquet(fsys, "d/*.parquet", o)
		if err != nil {
			t.Fatal(err)
		}
		return ds.opts.MetadataFetch
	}
	t.Setenv(MetadataFetchEnv, "inline")
	if m := mode(&ReadOptions{}); m != Inline {
		t.Fatalf("env inline: %s", m)
	}
	t.Setenv(MetadataFetchEnv, "threaded")
	if m := mode(&ReadOptions{}); m != Threaded {
		t.Fatalf("env threaded: %s", m)
	}
	t.Setenv(MetadataFetchEnv, "inline")
	if m := mode(&ReadOptions{MetadataFetch: Threaded}); m != Threaded || !strings.Contains(m.String(), "threaded") {
		t.Fatalf("option overrides env: %s", m)
	}
	if m := (&ReadOptions{MetadataFetch: Inline}).normalize(Threaded).MetadataFetch; m != Inline || !strings.Contains(m.String(), "inline") {
		t.Fatalf("option overrides env: %s", m)
	}
}
