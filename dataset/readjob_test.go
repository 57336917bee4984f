package dataset

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zonalread/zonalread/internal/testkit"
)

// The next task's column chunks are fetched while the current task
// decodes: with one worker, task 0's decode is held in an operator until
// the fetch of task 1 (row group 1 of the first file) has been read from
// the file; then every row comes out, in order, by value. Before the
// fetches ran ahead, a worker fetched and decoded one task at a time, so
// task 1's chunks were never read while task 0 was held.
func TestFetchRunsAheadOfDecode(t *testing.T) {
	fetchedWhileFirstDecodeHeld(t, 1, 1)
}

// fetchedWhileFirstDecodeHeld reads threeFiles one row group per task in
// order with workers workers, holds task 0's decode until row group rg of
// the first file (task rg) has been read from the file, then checks every
// row by value.
func fetchedWhileFirstDecodeHeld(t *testing.T, workers, rg int) {
	t.Helper()
	base, _ := memFS(t, threeFiles(t))
	fsys := &fsLog{FS: base}
	fsys.reset()
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{Workers: workers, TargetBlockBytes: 1, PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := ds.Plan()
	if err != nil {
		t.Fatal(err)
	}
	off, _, _ := rowGroupRead(t, plan, 0, rg)
	it, release, recs := holdFirstDecode(t, ds)
	defer it.Close()
	testkit.WaitFor(t, fmt.Sprintf("task %d's chunks read while task 0 decodes", rg), func() bool { return fsys.readAt("d/part-0.parquet", off) })
	release()
	var rows []row
	for _, rec := range <-recs {
		rows = append(rows, recordRows(t, rec)...)
		rec.Release()
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows, idRange(0, 30000), "all")
}

// holdFirstDecode starts an execution of ds whose first decode is held in
// an operator, and a consumer that collects (retains) every record. It
// returns once the decode is held: release lets it go; recs delivers the
// records once the execution ended.
func holdFirstDecode(t *testing.T, ds *Dataset) (it *Iterator, release func(), recs <-chan []arrow.RecordBatch) {
	held, released := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := ds.Map(func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		once.Do(func() {
			close(held)
			select { // a failed test's Close cancels ctx
			case <-released:
			case <-ctx.Done():
			}
		})
		return rec, nil
	})
	it = hold.Iter(context.Background())
	out := make(chan []arrow.RecordBatch, 1)
	go func() {
		var got []arrow.RecordBatch
		for it.Next() {
			rec := it.Block().Record
			rec.Retain()
			got = append(got, rec)
		}
		out <- got
	}()
	<-held
	return it, sync.OnceFunc(func() { close(released) }), out
}

// rowGroupRead is what a task of one row group fetches and is estimated
// at: its column chunks as one range (they are neighbours), and their
// uncompressed size.
func rowGroupRead(t *testing.T, plan *Plan, file, rg int) (off, fetch, est int64) {
	t.Helper()
	md := plan.footers[file]
	leaves := make([]int, md.Schema.NumColumns())
	end := int64(-1)
	for c := range leaves {
		leaves[c] = c
		cc, err := md.RowGroup(rg).ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		r, err := chunkRange(cc, plan.Files[file].Size)
		if err != nil {
			t.Fatal(err)
		}
		if end < 0 || r.off < off {
			off = r.off
		}
		end = max(end, r.off+r.n)
	}
	return off, end - off, rowGroupBytes(md, rg, leaves)
}

// While one decode holds its reservation, the fetches behind it keep room
// for the largest decode they promise, not for the sum of them: the budget
// here is task 0's reservation, the fetched bytes of tasks 1-3 and the
// largest of their promised decodes, so with task 0's decode held all three
// are fetched (room for the sum fetched one). Then every row comes out, in
// order, by value, and the budget's high water stays within it and one
// block.
func TestFetchesKeepRoomForTheLargestDecode(t *testing.T) {
	base, _ := memFS(t, threeFiles(t))
	fsys := &fsLog{FS: base}
	fsys.reset()
	offs, budget := roomForThreeFetches(t, fsys)
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{Workers: 4, TargetBlockBytes: 1, MemoryBudget: budget, PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	it, release, recs := holdFirstDecode(t, ds)
	defer it.Close()
	for k := 1; k < 4; k++ {
		testkit.WaitFor(t, fmt.Sprintf("task %d's chunks read while task 0 decodes", k), func() bool { return fsys.readAt("d/part-0.parquet", offs[k]) })
	}
	release()
	var rows []row
	var block int64
	for _, rec := range <-recs {
		rows = append(rows, recordRows(t, rec)...)
		block = max(block, recordSize(rec))
		rec.Release()
	}
	checkAllRowsWithin(t, it, rows, budget, block)
}

// With PreserveOrder, a task decoded ahead of the task before it parks its
// blocks until that one is done, so it must leave room for that decode:
// while task 0's fetch is held and the consumer waits, tasks 1-3 are
// fetched, and the loop decodes them only as far as room for task 0's
// decode is left. Before, a waiting consumer let each of them start as if
// it could feed it, their blocks piled up parked, and task 0's decode then
// went over the budget by more than a block. Rows are checked by value.
func TestPreserveOrderDecodesAheadOnlyWithRoom(t *testing.T) {
	base, _ := memFS(t, threeFiles(t))
	h := &heldFS{fsLog: fsLog{FS: base}, file: "d/part-0.parquet", reached: make(chan struct{}), release: make(chan struct{})}
	h.reset()
	offs, budget := roomForThreeFetches(t, h)
	if offs[0] != 4 {
		t.Fatalf("task 0 reads at %d, heldFS holds the read at 4", offs[0])
	}
	ds, err := ReadParquet(h, "d/*.parquet", &ReadOptions{Workers: 4, TargetBlockBytes: 1, MemoryBudget: budget, PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	h.armed.Store(true)
	it := ds.Iter(context.Background())
	defer it.Close()
	rows := make(chan []row, 1)
	var block int64
	go func() { // the consumer: waits for task 0's blocks
		var got []row
		for it.Next() {
			got = append(got, recordRows(t, it.Block().Record)...)
			block = max(block, it.Block().Meta.SizeBytes)
		}
		rows <- got
	}()
	<-h.reached
	testkit.WaitFor(t, "tasks 1-3 fetched and the loop at rest", func() bool {
		return h.readAt("d/part-0.parquet", offs[1]) && h.readAt("d/part-0.parquet", offs[2]) && h.readAt("d/part-0.parquet", offs[3]) &&
			it.Stats().ReadsRunning == 1 // the held fetch
	})
	close(h.release)
	got := <-rows // block is the consumer's until then
	checkAllRowsWithin(t, it, got, budget, block)
}

// roomForThreeFetches returns where tasks 0-3 of threeFiles in fsys (row
// groups 0-3 of the first file, TargetBlockBytes 1) read, and a budget of
// task 0's decode reservation, the fetched bytes of tasks 1-3 and the largest decode they
// promise: room for all three to be fetched while task 0 decodes only when
// the loop keeps room for the largest promise, not their sum (it fails t
// when the row groups are too alike to tell). Before a decode has ended, a
// decode is reserved decodePeak times its estimate, of which its fetched
// bytes are part.
func roomForThreeFetches(t *testing.T, fsys fs.FS) (offs [4]int64, budget int64) {
	t.Helper()
	probe, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := probe.Plan()
	if err != nil {
		t.Fatal(err)
	}
	var fetched, largest, firstTwo int64 // firstTwo: what tasks 1 and 2 hold and promise
	var est0 int64
	offs[0], _, est0 = rowGroupRead(t, plan, 0, 0)
	held := est0 * decodePeak
	for k := 1; k < 4; k++ {
		off, fetch, est := rowGroupRead(t, plan, 0, k)
		offs[k] = off
		fetched += fetch
		largest = max(largest, est*decodePeak-fetch)
		if k < 3 {
			firstTwo += est * decodePeak
		}
	}
	budget = held + fetched + largest
	if held+firstTwo <= budget {
		t.Fatalf("budget %d has room for the sum of two promises (%d held, %d for tasks 1-2): the test would not tell", budget, held, firstTwo)
	}
	return offs, budget
}

// Fetched tasks waiting for a decode hold the link back only beyond
// Workers of them: with two workers and task 0's decode held (the first
// decode runs alone until it ends), tasks 1-4 are fetched: two waiting
// and two more on the link. Counting the waiting ones against the
// look-ahead stopped at task 2. Rows checked by value.
func TestFetchesRunOnWhileTheFirstDecodeCalibrates(t *testing.T) {
	fetchedWhileFirstDecodeHeld(t, 2, 4)
}

// checkAllRowsWithin checks that it ended without error having read every
// row of threeFiles in order, by value, and that its budget's high water
// stayed within budget and one block.
func checkAllRowsWithin(t *testing.T, it *Iterator, rows []row, budget, block int64) {
	t.Helper()
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows, idRange(0, 30000), "all")
	if high := it.Stats().BudgetHighWater; high > budget+block {
		t.Errorf("budget high water %d over the budget %d and one block %d", high, budget, block)
	}
}
