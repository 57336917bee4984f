package dataset

import (
	"context"
	"io"
	"io/fs"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zonalread/zonalread/internal/testkit"
)

// offsetFS records the offset of every ReadAt on its files.
type offsetFS struct {
	fs.FS
	mu   sync.Mutex
	offs map[string]map[int64]bool
}

func (o *offsetFS) Open(name string) (fs.File, error) {
	f, err := o.FS.Open(name)
	if _, ok := f.(io.ReaderAt); err != nil || !ok {
		return f, err
	}
	return &offsetFile{File: f, o: o, name: name}, nil
}

// readAt reports whether a ReadAt of name at off happened.
func (o *offsetFS) readAt(name string, off int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.offs[name][off]
}

type offsetFile struct {
	fs.File
	o    *offsetFS
	name string
}

func (f *offsetFile) ReadAt(p []byte, off int64) (int, error) {
	f.o.mu.Lock()
	if f.o.offs[f.name] == nil {
		f.o.offs[f.name] = map[int64]bool{}
	}
	f.o.offs[f.name][off] = true
	f.o.mu.Unlock()
	return f.File.(io.ReaderAt).ReadAt(p, off)
}

// The next task's column chunks are fetched while the current task
// decodes: with one worker, task 0's decode is held in an operator until
// the fetch of task 1 (row group 1 of the first file) has been read from
// the file; then every row comes out, in order, by value. Before the
// fetches ran ahead, a worker fetched and decoded one task at a time, so
// task 1's chunks were never read while task 0 was held.
func TestFetchRunsAheadOfDecode(t *testing.T) {
	base, _ := memFS(t, threeFiles(t))
	fsys := &offsetFS{FS: base, offs: map[string]map[int64]bool{}}
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
