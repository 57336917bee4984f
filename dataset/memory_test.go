package dataset

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
)

// memoryRig is a dataset several times its memory budget, read by a slow
// consumer: every row is checked off once in a bitset (the consumer keeps
// nothing else), and the live heap is sampled after GC against the heap
// before the read.
type memoryRig struct {
	ds       *Dataset
	rows     int64
	budget   int64
	block    int64 // the largest block: the one exception to the budget
	baseline uint64
	// maxGrowth is the most the live heap grew over baseline at a check.
	maxGrowth uint64
}

const memoryRows = 240_000

func newMemoryRig(t *testing.T, budget int64) *memoryRig {
	files := map[string][]byte{}
	const per = memoryRows / 6
	for i := range int64(6) {
		files[fmt.Sprintf("m/part-%d.parquet", i)] = writeParquet(t, i*per, per, 8000)
	}
	// The FS's prefetch buffers are the FS's own budget (gcsfs
	// PrefetchBudget), not the dataset's: the read tasks fetch exactly the
	// column chunks they decode, so the FS is asked for no read-ahead.
	fsys := memFSWith(t, files, &gcsfs.Options{DisablePrefetch: true})
	ds, err := ReadParquet(fsys, "m/*.parquet", &ReadOptions{MemoryBudget: budget, TargetBlockBytes: 1, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := &memoryRig{ds: ds, rows: memoryRows, budget: budget}
	probe := ds.Iter(context.Background())
	for probe.Next() {
		r.block = max(r.block, probe.Block().Meta.SizeBytes)
	}
	probe.Close()
	if err := probe.Err(); err != nil {
		t.Fatal(err)
	}
	if budget < 4*r.block {
		t.Fatalf("budget %d is under 4 blocks of %d: the test would measure the exception", budget, r.block)
	}
	r.baseline = liveHeap()
	return r
}

// liveHeap is the heap the last full collection found live (two
// collections: the first only moves sync.Pool contents to their victim
// caches). It is read from runtime/metrics, not MemStats.HeapAlloc, which
// also counts what the pipeline's goroutines allocate after the mark.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// seen checks rows off by id, safe for the split consumers.
type seen struct {
	mu   sync.Mutex
	bits []uint64
	n    int64
}

func newSeen(rows int64) *seen { return &seen{bits: make([]uint64, (rows+63)/64)} }

func (s *seen) add(t *testing.T, rec arrow.RecordBatch) {
	ids := rec.Column(rec.Schema().FieldIndices("id")[0]).(*array.Int64)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range ids.Len() {
		id := ids.Value(i)
		if s.bits[id/64]&(1<<(id%64)) != 0 {
			t.Errorf("row %d twice", id)
		}
		s.bits[id/64] |= 1 << (id % 64)
		s.n++
	}
}

// checkHeap fails t when the live heap grew by more than the budget and a
// quarter. It measures only while no read runs (the slow consumer lets the
// pipeline fill the budget): a collection while a decoder allocates marks
// the decoder's new garbage live. A read may start while the collection
// runs (a block the consumer let go frees room), so the measurement is
// kept only when no read ran from before it to after it.
func (r *memoryRig) checkHeap(t *testing.T, what string, b *memBudget) {
	const attempts = 100
	for range attempts {
		testkit.WaitFor(t, "the reads to stop", func() bool { return b.reads.Load() == 0 })
		started := b.started.Load()
		live := liveHeap()
		if b.reads.Load() != 0 || b.started.Load() != started {
			continue // a read ran during the collection
		}
		if live > r.baseline {
			r.maxGrowth = max(r.maxGrowth, live-r.baseline)
		}
		if live > r.baseline && live-r.baseline > uint64(r.budget)*5/4 {
			t.Errorf("%s: live heap grew %d bytes over %d, budget %d", what, live-r.baseline, r.baseline, r.budget)
		}
		return
	}
	t.Fatalf("%s: in %d tries, a read started during every collection", what, attempts)
}

func (r *memoryRig) checkHighWater(t *testing.T, what string, high int64) {
	t.Logf("%s: high water %d, budget %d, largest block %d; most live heap growth seen %d", what, high, r.budget, r.block, r.maxGrowth)
	if high > r.budget+r.block {
		t.Errorf("%s: high water %d over budget %d + one block %d", what, high, r.budget, r.block)
	}
	if high == 0 {
		t.Errorf("%s: high water 0: nothing was counted", what)
	}
}

// slowly simulates a consumer slower than the reads, so the pipeline
// fills up to what the budget allows. The assertions do not depend on the
// duration: a faster or slower consumer only fills it less or more.
func slowly() { time.Sleep(200 * time.Microsecond) }

// Iter with a slow consumer: the reads stop at the budget.
func TestMemoryBudgetIter(t *testing.T) {
	r := newMemoryRig(t, 4<<20)
	s := newSeen(r.rows)
	it := r.ds.Iter(context.Background())
	for i := 0; it.Next(); i++ {
		s.add(t, it.Block().Record)
		if i%10 == 0 {
			r.checkHeap(t, "Iter", it.budget)
		}
		slowly()
	}
	it.Close()
	if err := it.Err(); err != nil || s.n != r.rows {
		t.Fatalf("Iter: %d rows, %v", s.n, err)
	}
	r.checkHighWater(t, "Iter", it.Stats().BudgetHighWater)
}

// Batches with 8 prefetched batches, 8 collate workers, a 160k-row local
// shuffle and PreserveOrder with one slow collate: everything the batch
// pipeline holds counts, and the shuffle buffer is held to half the
// budget.
func TestMemoryBudgetBatches(t *testing.T) {
	r := newMemoryRig(t, 8<<20)
	s := newSeen(r.rows)
	release := make(chan struct{})
	opts := &BatchOptions{BatchSize: 2000, PrefetchBatches: 8, CollateWorkers: 8, LocalShuffleBufferSize: 160_000, PreserveOrder: true,
		Collate: func(ctx context.Context, rec arrow.RecordBatch) (any, error) {
			if rec.NumRows() > 0 && firstID(rec)%7 == 3 { // some batches collate slowly
				select {
				case <-release:
				case <-time.After(5 * time.Millisecond):
				}
			}
			return rec.NumRows(), nil
		}}
	bi := r.ds.Batches(context.Background(), opts)
	for i := 0; bi.Next(); i++ {
		b := bi.Batch()
		if b.Collated.(int64) != b.Record.NumRows() {
			t.Fatalf("batch %d collated %v for %d rows", i, b.Collated, b.Record.NumRows())
		}
		s.add(t, b.Record)
		if i%10 == 0 {
			r.checkHeap(t, "Batches", bi.budget)
		}
		slowly()
	}
	close(release)
	bi.Close()
	if err := bi.Err(); err != nil || s.n != r.rows {
		t.Fatalf("Batches: %d rows, %v", s.n, err)
	}
	st := bi.Stats()
	r.checkHighWater(t, "Batches", st.MaxHeldBytes)
	if st.Rows != r.rows || st.HeldBytes != 0 {
		t.Errorf("Batches stats %+v: want %d rows and nothing held after Close", st, r.rows)
	}
}

func firstID(rec arrow.RecordBatch) int64 {
	return rec.Column(rec.Schema().FieldIndices("id")[0]).(*array.Int64).Value(0)
}

// StreamingSplit with 4 equal splits, one of them slow: blocks queued for
// the splits and the rows the coordinator carries count.
func TestMemoryBudgetStreamingSplit(t *testing.T) {
	r := newMemoryRig(t, 4<<20)
	s := newSeen(r.rows)
	splits := r.ds.StreamingSplit(4, true)
	// Every 20 batches all four consumers stop at a checkpoint; split 0,
	// the slow one, measures the heap while they wait (a collection while
	// the others allocate would count their garbage as live), then lets
	// them go on.
	const checkpoints = 3
	var arrived [checkpoints]sync.WaitGroup
	var resume [checkpoints]chan struct{}
	for k := range checkpoints {
		arrived[k].Add(len(splits))
		resume[k] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for i, sp := range splits {
		wg.Go(func() {
			bi, err := sp.Batches(context.Background(), &BatchOptions{BatchSize: 1000})
			if err != nil {
				t.Error(err)
				return
			}
			defer bi.Close()
			for n := 0; bi.Next(); n++ {
				s.add(t, bi.Batch().Record)
				if i == 0 {
					slowly()
				}
				if k := n / 20; n%20 == 0 && k < checkpoints {
					arrived[k].Done()
					if i == 0 {
						arrived[k].Wait()
						r.checkHeap(t, "StreamingSplit", bi.budget)
						close(resume[k])
					}
					<-resume[k]
				}
			}
			if err := bi.Err(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if s.n != r.rows {
		t.Fatalf("splits read %d rows, want %d", s.n, r.rows)
	}
	for i, sp := range splits {
		st := sp.Stats()
		r.checkHighWater(t, fmt.Sprintf("split %d", i), st.MaxHeldBytes)
		if st.Rows != r.rows/4 {
			t.Errorf("split %d: stats %+v, want %d rows", i, st, r.rows/4)
		}
	}
}

// Dictionary-encoded strings decode to many times their Parquet size (the
// footer's estimate): the loop learns the ratio from the first task, which
// runs alone, and the high water stays within the budget.
func TestMemoryBudgetDictionaryStrings(t *testing.T) {
	const rows, groupRows = 120_000, 10_000
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	words := make([]string, 16)
	for i := range words {
		words[i] = strings.Repeat(string(rune('a'+i)), 200)
	}
	for id := range int64(rows) {
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.StringBuilder).Append(words[id%16])
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	fsys, _ := memFS(t, map[string][]byte{"s/a.parquet": writeRecord(t, rec, groupRows)})
	probe, err := ReadParquet(fsys, "s/*.parquet", &ReadOptions{TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	it := probe.Iter(context.Background())
	if !it.Next() {
		t.Fatal(it.Err())
	}
	block := it.Block().Meta.SizeBytes
	it.Close()
	plan, err := probe.Plan()
	if err != nil {
		t.Fatal(err)
	}
	est := rowGroupBytes(plan.footers[0], 0, []int{0, 1})
	t.Logf("a block decodes to %d bytes, %.1fx the footer's estimate %d; the file is %d bytes", block, float64(block)/float64(est), est, plan.Files[0].Size)
	if block < 4*est {
		t.Fatalf("the strings decode to only %.1fx the estimate: the test needs a misleading footer", float64(block)/float64(est))
	}

	budget := 3 * block
	ds, _ := ReadParquet(fsys, "s/*.parquet", &ReadOptions{TargetBlockBytes: 1, MemoryBudget: budget, Workers: 4})
	s := newSeen(rows)
	it = ds.Iter(context.Background())
	for it.Next() {
		s.add(t, it.Block().Record)
		slowly()
	}
	it.Close()
	if err := it.Err(); err != nil || s.n != rows {
		t.Fatalf("%d rows, %v", s.n, err)
	}
	if hw := it.Stats().BudgetHighWater; hw > budget {
		t.Fatalf("high water %d over budget %d (a block is %d)", hw, budget, block)
	}
}
