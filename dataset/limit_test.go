package dataset

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zonalread/zonalread/internal/testkit"
)

// fsLog records, per file, the opens and the ReadAt calls an execution
// makes, and the offsets read at: with footers cached by ReadParquet, an
// open is a footer resolved and a ReadAt is a read task's column-chunk
// fetch. Call reset before use.
type fsLog struct {
	fs.FS
	mu    sync.Mutex
	opens map[string]int
	reads map[string]int
	offs  map[string]map[int64]bool
}

func (l *fsLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opens, l.reads, l.offs = map[string]int{}, map[string]int{}, map[string]map[int64]bool{}
}

// readAt reports whether a ReadAt of name at off happened.
func (l *fsLog) readAt(name string, off int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.offs[name][off]
}

func (l *fsLog) counts() (opened, read int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.opens), len(l.reads)
}

func (l *fsLog) Open(name string) (fs.File, error) {
	f, err := l.FS.Open(name)
	if _, ok := f.(io.ReaderAt); err != nil || !ok {
		return f, err
	}
	l.mu.Lock()
	l.opens[name]++
	l.mu.Unlock()
	return &loggedFile{File: f, l: l, name: name}, nil
}

type loggedFile struct {
	fs.File
	l    *fsLog
	name string
}

func (f *loggedFile) ReadAt(p []byte, off int64) (int, error) {
	f.l.mu.Lock()
	f.l.reads[f.name]++
	if f.l.offs[f.name] == nil {
		f.l.offs[f.name] = map[int64]bool{}
	}
	f.l.offs[f.name][off] = true
	f.l.mu.Unlock()
	return f.File.(io.ReaderAt).ReadAt(p, off)
}

// Limit stops upstream work once satisfiable, counted at the fs: ten files
// of one 1000-row row group each, Limit(2500), two workers. Three tasks
// give the rows; when the third finishes at most one more (Workers-1) can
// have started, so at most 4 files are read, and at most footerLookahead
// footers beyond those are resolved. Both metadata modes, with and without
// PreserveOrder (whose parked rows count toward the Limit).
func TestLimitCountsAtFS(t *testing.T) {
	files := map[string][]byte{}
	for i := range int64(10) {
		files[fmt.Sprintf("f%02d.parquet", i)] = writeParquet(t, i*1000, 1000, 1000)
	}
	base, _ := memFS(t, files)
	for _, mode := range []MetadataFetch{Inline, Threaded} {
		for _, ordered := range []bool{false, true} {
			log := &fsLog{FS: base}
			log.reset()
			ds, err := ReadParquet(log, "*.parquet", &ReadOptions{MetadataFetch: mode, PreserveOrder: ordered, Workers: 2, TargetBlockBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			log.reset()
			got := collect(t, ds.Limit(2500).Iter(context.Background()))
			opened, read := log.counts()
			if read > 4 || opened > 4+footerLookahead {
				t.Fatalf("%s ordered=%v: %d files read, %d footers resolved for 2500 rows", mode, ordered, read, opened)
			}
			if ordered {
				checkRows(t, got, idRange(0, 2500), "all")
				continue
			}
			ids := make([]int64, len(got))
			for i, r := range got {
				if r != rowFor(r.id) {
					t.Fatalf("row %+v", r)
				}
				ids[i] = r.id
			}
			slices.Sort(ids)
			if len(slices.Compact(ids)) != 2500 {
				t.Fatalf("%s: %d rows, want 2500 distinct", mode, len(ids))
			}
		}
	}
}

// heldFS holds the read at offset 4 of one file (its first row group's
// column chunks: the first task) until released.
type heldFS struct {
	fsLog
	file    string
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (h *heldFS) Open(name string) (fs.File, error) {
	f, err := h.fsLog.Open(name)
	if lf, ok := f.(*loggedFile); ok && name == h.file {
		return &heldFile{loggedFile: lf, h: h}, err
	}
	return f, err
}

type heldFile struct {
	*loggedFile
	h *heldFS
}

func (f *heldFile) ReadAt(p []byte, off int64) (int, error) {
	if off == 4 && f.h.armed.CompareAndSwap(true, false) {
		close(f.h.reached)
		<-f.h.release
	}
	return f.loggedFile.ReadAt(p, off)
}

// With PreserveOrder, rows parked behind a slow first task count toward
// the Limit: while task 0 is held, tasks 1-3 finish (3000 rows parked for
// a Limit of 2500) and nothing else starts; the old count (emitted rows
// only) kept starting tasks until task 0 came back.
func TestLimitCountsParkedRows(t *testing.T) {
	base, _ := memFS(t, threeFiles(t))
	for _, mode := range []MetadataFetch{Inline, Threaded} {
		h := &heldFS{fsLog: fsLog{FS: base}, file: "d/part-0.parquet", reached: make(chan struct{}), release: make(chan struct{})}
		h.reset()
		ds, err := ReadParquet(h, "d/*.parquet", &ReadOptions{MetadataFetch: mode, PreserveOrder: true, Workers: 2, TargetBlockBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		h.armed.Store(true)
		it := ds.Limit(2500).Iter(context.Background())
		<-h.reached
		testkit.WaitFor(t, "tasks 1-3 to finish", func() bool { return it.Stats().Read.Tasks == 3 })
		close(h.release)
		checkRows(t, collect(t, it), idRange(0, 2500), "all")
		if n := it.Stats().Read.Tasks; n != 4 {
			t.Fatalf("%s: %d tasks read for 2500 rows (task 0 held)", mode, n)
		}
	}
}
