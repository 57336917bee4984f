package dataset

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zonalread/zonalread/internal/testkit"
)

func orderedDS(t *testing.T) *Dataset {
	fsys, _ := memFS(t, threeFiles(t))
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true, BatchRows: 300, TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func drainBatches(t *testing.T, bi *BatchIterator) (rows []row, sizes []int64, collated []any) {
	t.Helper()
	defer bi.Close()
	for i := 0; bi.Next(); i++ {
		b := bi.Batch()
		rows = append(rows, recordRows(t, b.Record)...)
		sizes = append(sizes, b.Record.NumRows())
		collated = append(collated, b.Collated)
	}
	if err := bi.Err(); err != nil {
		t.Fatal(err)
	}
	return
}

func TestBatchesSizesAndOrder(t *testing.T) {
	ds := orderedDS(t)
	rows, sizes, _ := drainBatches(t, ds.Batches(context.Background(), &BatchOptions{BatchSize: 1000, PrefetchBatches: 3}))
	checkRows(t, rows, idRange(0, 30000), "all")
	if len(sizes) != 30 || slices.ContainsFunc(sizes, func(n int64) bool { return n != 1000 }) {
		t.Fatalf("batch sizes %v", sizes)
	}
	rows, sizes, _ = drainBatches(t, ds.Batches(context.Background(), &BatchOptions{BatchSize: 7000}))
	checkRows(t, rows, idRange(0, 30000), "all")
	if !slices.Equal(sizes, []int64{7000, 7000, 7000, 7000, 2000}) {
		t.Fatalf("sizes %v", sizes)
	}
	rows, sizes, _ = drainBatches(t, ds.Batches(context.Background(), &BatchOptions{BatchSize: 7000, DropLast: true}))
	checkRows(t, rows, idRange(0, 28000), "all")
	if len(sizes) != 4 {
		t.Fatalf("DropLast sizes %v", sizes)
	}
}

func TestLocalShuffle(t *testing.T) {
	ds := orderedDS(t)
	opts := &BatchOptions{BatchSize: 500, LocalShuffleBufferSize: 4000, Seed: 7}
	a, _, _ := drainBatches(t, ds.Batches(context.Background(), opts))
	b, _, _ := drainBatches(t, ds.Batches(context.Background(), opts))
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different order")
	}
	sorted := slices.Clone(a)
	slices.SortFunc(sorted, func(x, y row) int { return int(x.id - y.id) })
	checkRows(t, sorted, idRange(0, 30000), "all")
	if slices.Equal(a, sorted) {
		t.Fatal("shuffle left the rows in order")
	}
	opts.Seed = 8
	c, _, _ := drainBatches(t, ds.Batches(context.Background(), opts))
	if slices.Equal(a, c) {
		t.Fatal("different seeds, same order")
	}
}

func TestCollateWorkers(t *testing.T) {
	ds := orderedDS(t)
	const n = 3
	var running, peak atomic.Int64
	collate := func(_ context.Context, rec arrow.RecordBatch) (any, error) {
		r := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		var sum int64
		ids := rec.Column(0).(*array.Int64)
		for i := range ids.Len() {
			sum += ids.Value(i)
		}
		return sum, nil
	}
	_, _, got := drainBatches(t, ds.Batches(context.Background(), &BatchOptions{BatchSize: 1000, Collate: collate, CollateWorkers: n, PreserveOrder: true}))
	if len(got) != 30 {
		t.Fatalf("%d batches", len(got))
	}
	for i, v := range got {
		want := int64(0)
		for id := int64(i * 1000); id < int64(i*1000+1000); id++ {
			want += id
		}
		if v.(int64) != want {
			t.Fatalf("batch %d collated to %v, want %d (order not preserved?)", i, v, want)
		}
	}
	if p := peak.Load(); p > n {
		t.Fatalf("%d Collate calls at once, N = %d", p, n)
	}

	boom := errors.New("boom")
	bi := ds.Batches(context.Background(), &BatchOptions{Collate: func(context.Context, arrow.RecordBatch) (any, error) { return nil, boom }, CollateWorkers: 2})
	for bi.Next() {
	}
	if !errors.Is(bi.Err(), boom) {
		t.Fatalf("Err = %v", bi.Err())
	}
	bi.Close()
}

func TestBatchesEarlyClose(t *testing.T) {
	ds := orderedDS(t)
	bi := ds.Batches(context.Background(), &BatchOptions{BatchSize: 100, Collate: func(_ context.Context, r arrow.RecordBatch) (any, error) { return r.NumRows(), nil }, CollateWorkers: 4})
	bi.Next()
	bi.Next()
	bi.Close() // leaks nothing (goleak)
	bi.Close()
}

// Close lets go of every batch it counted, those still waiting for a
// collate worker included: with Collate, the formed batches wait in their
// own queue, which Close did not drain, and the budget went on counting
// them (a split's budget is the epoch's, shared with the other splits).
// Here the one worker blocks in Collate until Close while the former fills
// that queue.
func TestCloseLetsGoOfBatchesWaitingForCollate(t *testing.T) {
	ds := orderedDS(t)
	blocked := func(ctx context.Context, rec arrow.RecordBatch) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	opts := &BatchOptions{BatchSize: 100, PrefetchBatches: 4, CollateWorkers: 1, Collate: blocked}
	closeFull := func(bi *BatchIterator) {
		testkit.WaitFor(t, "the collate queue to fill", func() bool { return len(bi.raw) == cap(bi.raw) })
		bi.Close()
	}

	bi := ds.Batches(context.Background(), opts)
	closeFull(bi)
	if st := bi.Stats(); st.HeldBytes != 0 {
		t.Fatalf("Batches: %d bytes still counted after Close", st.HeldBytes)
	}

	splits := ds.StreamingSplit(2, false)
	var wg sync.WaitGroup
	sb, err := splits[0].Batches(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { closeFull(sb) })
	other, err := splits[1].Batches(context.Background(), &BatchOptions{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for other.Next() {
	}
	if err := other.Err(); err != nil {
		t.Fatal(err)
	}
	other.Close()
	wg.Wait()
	if st := splits[1].Stats(); st.HeldBytes != 0 {
		t.Fatalf("split: the epoch's budget still counts %d bytes after every iterator closed", st.HeldBytes)
	}
}

// Close stops the collate workers: a worker whose Collate returns after
// Close began neither pulls another batch nor collates again, though the
// former has batches ready (the stop check is under the input lock, before
// pulling and before collating).
func TestCollateStopsAtClose(t *testing.T) {
	ds := orderedDS(t)
	var calls, inside atomic.Int64
	bi := ds.Batches(context.Background(), &BatchOptions{BatchSize: 100, PrefetchBatches: 8, CollateWorkers: 4,
		Collate: func(ctx context.Context, rec arrow.RecordBatch) (any, error) {
			calls.Add(1)
			inside.Add(1)
			<-ctx.Done() // every worker blocks here until Close
			return nil, ctx.Err()
		}})
	testkit.WaitFor(t, "4 workers inside Collate", func() bool { return inside.Load() == 4 })
	testkit.WaitFor(t, "the former to queue batches ahead", func() bool { return bi.Stats().WaitingForConsumer > 0 })
	bi.Close()
	if n := calls.Load(); n != 4 {
		t.Fatalf("Collate called %d times, want the 4 running at Close", n)
	}
	if err := bi.Err(); err != nil {
		t.Fatalf("Err after Close = %v", err)
	}
}
