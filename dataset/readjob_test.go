package dataset

import (
	"context"
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
	base, _ := memFS(t, threeFiles(t))
	fsys := &fsLog{FS: base}
	fsys.reset()
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{Workers: 1, TargetBlockBytes: 1, PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := ds.Plan()
	if err != nil {
		t.Fatal(err)
	}
	// Where the coalesced read of row group 1's column chunks starts.
	md := plan.footers[0]
	next := int64(-1)
	for c := range md.RowGroup(1).NumColumns() {
		cc, err := md.RowGroup(1).ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		r, err := chunkRange(cc, plan.Files[0].Size)
		if err != nil {
			t.Fatal(err)
		}
		if next < 0 || r.off < next {
			next = r.off
		}
	}

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := ds.Map(func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		once.Do(func() {
			close(held)
			select { // a failed test's Close cancels ctx
			case <-release:
			case <-ctx.Done():
			}
		})
		return rec, nil
	})
	it := hold.Iter(context.Background())
	defer it.Close()
	recs := make(chan []arrow.RecordBatch, 1)
	go func() { // the consumer: the test's goroutine waits for the fetch
		var out []arrow.RecordBatch
		for it.Next() {
			rec := it.Block().Record
			rec.Retain()
			out = append(out, rec)
		}
		recs <- out
	}()
	<-held
	testkit.WaitFor(t, "task 1's chunks read while task 0 decodes", func() bool { return fsys.readAt("d/part-0.parquet", next) })
	close(release)
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
