package dataset

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"testing"
)

// fsLog records, per file, the opens and the ReadAt calls an execution
// makes: with footers cached by ReadParquet, an open is a footer resolved
// and a ReadAt is a read task's column-chunk fetch.
type fsLog struct {
	fs.FS
	mu    sync.Mutex
	opens map[string]int
	reads map[string]int
}

func (l *fsLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opens, l.reads = map[string]int{}, map[string]int{}
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
