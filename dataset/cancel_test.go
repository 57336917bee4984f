package dataset

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// A cancelled or expired context ends Iter and Batches with an error
// wrapping the context's, never a clean end.
func TestCancelIterAndBatches(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	ds, _ := ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1})
	for range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		it := ds.Iter(ctx)
		if !it.Next() {
			t.Fatal(it.Err())
		}
		cancel()
		for it.Next() {
		}
		if err := it.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Iter after cancel: %v", err)
		}
		it.Close()

		for _, opts := range []*BatchOptions{{BatchSize: 100}, {BatchSize: 100, CollateWorkers: 2, PreserveOrder: true,
			Collate: func(ctx context.Context, rec arrow.RecordBatch) (any, error) { return rec.NumRows(), nil }}} {
			ctx, cancel := context.WithCancel(context.Background())
			bi := ds.Batches(ctx, opts)
			if !bi.Next() {
				t.Fatal(bi.Err())
			}
			cancel()
			for bi.Next() {
			}
			if err := bi.Err(); !errors.Is(err, context.Canceled) {
				t.Fatalf("Batches after cancel: %v", err)
			}
			bi.Close()
		}
	}
	// An expired deadline.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	if _, err := ReadParquetContext(ctx, fsys, "d/*.parquet", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadParquetContext with an expired deadline: %v", err)
	}
	bi := ds.Batches(ctx, nil)
	for bi.Next() {
	}
	if err := bi.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Batches with an expired deadline: %v", err)
	}
	bi.Close()
}

// An execution cancelled before it starts, in either footer mode, ends
// with the context's error: Inline resolves footers on the scheduling
// loop, whose failed resolves were dropped as cancelled and left the loop
// finished (every file resolved, no task) before it saw ctx.Done, so the
// stream ended cleanly with none of its rows. Footers are not cached here
// (a fresh dataset per case), so every resolve runs under the cancel.
func TestCancelledBeforeIterFailsInEveryFooterMode(t *testing.T) {
	for _, mode := range []MetadataFetch{Inline, Threaded} {
		for range 5 {
			fsys, _ := memFS(t, threeFiles(t))
			ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{MetadataFetch: mode})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			it := ds.Iter(ctx)
			var rows int64
			for it.Next() {
				rows += it.Block().Meta.NumRows
			}
			if err := it.Err(); !errors.Is(err, context.Canceled) {
				t.Fatalf("%v: Iter under a cancelled context: %d rows, Err %v; want context.Canceled", mode, rows, err)
			}
			it.Close()
		}
	}
}

// Every split (equal or not, through Iter or Batches) ends with the
// cancelled context's error; the next epoch then reads every row.
func TestCancelSplits(t *testing.T) {
	ds := splitDS(t, 30000)
	for _, equal := range []bool{false, true} {
		splits := ds.StreamingSplit(3, equal)
		ctx, cancel := context.WithCancel(context.Background())
		var started, wg sync.WaitGroup
		errs := make([]error, len(splits))
		for i, s := range splits {
			started.Add(1)
			wg.Go(func() {
				var next func() bool
				var errf func() error
				if i%2 == 0 {
					it, err := s.Iter(ctx)
					if err != nil {
						t.Error(err)
						started.Done()
						return
					}
					defer it.Close()
					next, errf = it.Next, it.Err
				} else {
					bi, err := s.Batches(ctx, &BatchOptions{BatchSize: 10})
					if err != nil {
						t.Error(err)
						started.Done()
						return
					}
					defer bi.Close()
					next, errf = bi.Next, bi.Err
				}
				if !next() {
					t.Errorf("split %d: no first block: %v", i, errf())
				}
				started.Done()
				<-ctx.Done()
				for next() {
				}
				errs[i] = errf()
			})
		}
		started.Wait()
		cancel()
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("equal=%v split %d: Err = %v, want context.Canceled", equal, i, err)
			}
		}
		// The next epoch runs whole.
		rows := readEpoch(t, splits)
		if (!equal && rows != 30000) || (equal && rows != 30000) {
			t.Fatalf("equal=%v: epoch 2 read %d rows", equal, rows)
		}
	}
}

// readEpoch reads one epoch on every split concurrently and returns the
// rows.
func readEpoch(t *testing.T, splits []*Split) int64 {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var rows int64
	for _, s := range splits {
		wg.Go(func() {
			it, err := s.Iter(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			defer it.Close()
			for it.Next() {
				mu.Lock()
				rows += it.Block().Record.NumRows()
				mu.Unlock()
			}
			if it.Err() != nil {
				t.Error(it.Err())
			}
		})
	}
	wg.Wait()
	return rows
}

// A split whose Iter fails (its context ended while the others were still
// on the current epoch) does not advance: every split stays on the same
// epoch and the next one reads every row.
func TestSplitEpochsDoNotDrift(t *testing.T) {
	ds := splitDS(t, 30000)
	for _, equal := range []bool{false, true} {
		splits := ds.StreamingSplit(2, equal)
		// Epoch 1: split 1 starts, split 0 reads to the end first.
		it1, err := splits[1].Iter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan int64)
		go func() {
			var n int64
			for it1.Next() {
				n += it1.Block().Record.NumRows()
			}
			it1.Close()
			done <- n
		}()
		it0, err := splits[0].Iter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var n0 int64
		for it0.Next() {
			n0 += it0.Block().Record.NumRows()
		}
		it0.Close()
		// Split 0 asks for epoch 2 with a context that has ended (split 1
		// may still be on epoch 1): it fails and does not advance.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := splits[0].Iter(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Iter with a cancelled context: %v", err)
		}
		n1 := <-done
		if n0+n1 != 30000 {
			t.Fatalf("equal=%v: epoch 1 read %d rows", equal, n0+n1)
		}
		rows := readEpoch(t, splits)
		if rows != 30000 {
			t.Fatalf("equal=%v: epoch 2 read %d rows", equal, rows)
		}
		// And epoch 3 still lines up.
		if rows := readEpoch(t, splits); rows != 30000 {
			t.Fatalf("equal=%v: epoch 3 read %d rows", equal, rows)
		}
	}
}

// A split that stops pulling without Close fails the others with
// ErrSplitAbandoned after AbandonTimeout instead of hanging them.
func TestSplitAbandoned(t *testing.T) {
	ds := splitDS(t, 30000)
	opts := &SplitOptions{AbandonTimeout: 50 * time.Millisecond}
	// Equal: split 0 never pulls; split 1 is starved of its share.
	splits := ds.StreamingSplitWith(2, true, opts)
	it, err := splits[1].Iter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, ErrSplitAbandoned) {
		t.Fatalf("equal: Err = %v, want ErrSplitAbandoned", err)
	}
	it.Close()
	// Not equal: split 1 reads epoch 1 alone; epoch 2 waits for split 0,
	// which never finishes epoch 1.
	splits = ds.StreamingSplitWith(2, false, opts)
	it, err = splits[1].Iter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for it.Next() {
		rows += it.Block().Record.NumRows()
	}
	it.Close()
	if it.Err() != nil || rows != 30000 {
		t.Fatalf("unequal epoch 1: %d rows, %v", rows, it.Err())
	}
	if _, err := splits[1].Iter(context.Background()); !errors.Is(err, ErrSplitAbandoned) {
		t.Fatalf("unequal epoch 2: %v, want ErrSplitAbandoned", err)
	}
	if DefaultAbandonTimeout != 10*time.Minute || (*SplitOptions)(nil).normalize().AbandonTimeout != DefaultAbandonTimeout {
		t.Fatal("default AbandonTimeout")
	}
}

// A panic in Map, Filter (before or after a Limit) or Collate becomes a
// *PanicError with the value and stack; the execution shuts down (goleak).
func TestPanicInUserCode(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	ds, _ := ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1, MaxErroredBlocks: -1})
	boom := func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) { panic("boom") }
	cases := map[string]*Dataset{
		"Map":               ds.Map(boom),
		"Filter":            ds.Filter(func(arrow.RecordBatch) ([]bool, error) { panic("boom") }),
		"Map after a Limit": ds.Limit(5000).Map(boom),
	}
	check := func(name string, err error) {
		t.Helper()
		var pe *PanicError
		if !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "panic") {
			t.Fatalf("%s: Err = %v, want a *PanicError", name, err)
		}
	}
	for name, d := range cases {
		it := d.Iter(context.Background())
		for it.Next() {
		}
		check(name, it.Err())
		it.Close()
		bi := d.Batches(context.Background(), nil)
		for bi.Next() {
		}
		check(name+" (Batches)", bi.Err())
		bi.Close()
	}
	bi := ds.Batches(context.Background(), &BatchOptions{CollateWorkers: 2,
		Collate: func(ctx context.Context, rec arrow.RecordBatch) (any, error) { panic("boom") }})
	for bi.Next() {
	}
	check("Collate", bi.Err())
	bi.Close()
}

// A Map that returns no record and no error fails the execution with an
// error naming the operator, instead of crashing the worker.
func TestMapReturningNil(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	ds, err := ReadParquet(fsys, "d/*.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	it := ds.Map(func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) { return nil, nil }).Iter(context.Background())
	for it.Next() {
	}
	it.Close()
	if err := it.Err(); err == nil || !strings.Contains(err.Error(), "Map") || !strings.Contains(err.Error(), "nil record") {
		t.Fatalf("Err = %v", err)
	}
}
