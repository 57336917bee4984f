package dataset

import (
	"context"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func splitDS(t *testing.T, rows int64) *Dataset {
	fsys, _ := memFS(t, map[string][]byte{
		"a.parquet": writeParquet(t, 0, rows/2, 1000),
		"b.parquet": writeParquet(t, rows/2, rows-rows/2, 1000),
	})
	ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{BatchRows: 700, TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// consume reads split s's next epoch in batches; slow makes it do extra
// work per batch so consumers run at different speeds.
func consume(t *testing.T, s *Split, opts *BatchOptions, slow bool, stopAfter int) (ids []int64, batches int) {
	bi, err := s.Batches(context.Background(), opts)
	if err != nil {
		t.Error(err)
		return
	}
	defer bi.Close()
	for bi.Next() {
		for _, r := range recordRows(t, bi.Batch().Record) {
			ids = append(ids, r.id)
		}
		batches++
		if slow {
			var x int
			for i := range 200000 {
				x += i
			}
			_ = x
		}
		if stopAfter > 0 && batches == stopAfter {
			return
		}
	}
	if err := bi.Err(); err != nil {
		t.Error(err)
	}
	return
}

func TestStreamingSplitEqual(t *testing.T) {
	const total = 29999
	ds := splitDS(t, total)
	splits := ds.StreamingSplit(3, true)
	opts := &BatchOptions{BatchSize: 512, LocalShuffleBufferSize: 2000, Seed: 3}
	for epoch := range 2 {
		ids := make([][]int64, 3)
		nb := make([]int, 3)
		var wg sync.WaitGroup
		for i, s := range splits {
			wg.Go(func() { ids[i], nb[i] = consume(t, s, opts, i == 1, 0) })
		}
		wg.Wait()
		for i := range splits {
			if len(ids[i]) != total/3 {
				t.Fatalf("epoch %d: split %d got %d rows, want %d", epoch, i, len(ids[i]), total/3)
			}
			if nb[i] != nb[0] {
				t.Fatalf("epoch %d: batch counts %v differ", epoch, nb)
			}
		}
		all := slices.Concat(ids...)
		slices.Sort(all)
		if len(slices.Compact(all)) != len(all) || all[0] < 0 || all[len(all)-1] >= total {
			t.Fatalf("epoch %d: rows repeated or out of range", epoch)
		}
	}
}

func TestStreamingSplitUnequalSharesAll(t *testing.T) {
	const total = 20000
	ds := splitDS(t, total)
	splits := ds.StreamingSplit(4, false)
	ids := make([][]int64, 4)
	var wg sync.WaitGroup
	for i, s := range splits {
		wg.Go(func() { ids[i], _ = consume(t, s, &BatchOptions{BatchSize: 100}, i%2 == 0, 0) })
	}
	wg.Wait()
	all := slices.Concat(ids...)
	slices.Sort(all)
	if !slices.Equal(all, idRange(0, total)) {
		t.Fatalf("splits saw %d rows, want each of %d once", len(all), total)
	}
}

// A consumer that stops early (and closes) never blocks the others, in
// either mode; the next epoch then starts for everyone.
func TestStreamingSplitEarlyStop(t *testing.T) {
	for _, equal := range []bool{true, false} {
		const total = 20000
		ds := splitDS(t, total)
		splits := ds.StreamingSplit(3, equal)
		var rest atomic.Int64
		var wg sync.WaitGroup
		for i, s := range splits {
			wg.Go(func() {
				stop := 0
				if i == 0 {
					stop = 1 // gives up after one batch
				}
				ids, _ := consume(t, s, &BatchOptions{BatchSize: 256}, false, stop)
				if i != 0 {
					rest.Add(int64(len(ids)))
				}
			})
		}
		wg.Wait()
		if equal && rest.Load() != 2*(total/3) {
			t.Fatalf("equal: the two other splits got %d rows, want %d", rest.Load(), 2*(total/3))
		}
		// Without equal, a split that closes early loses the blocks it had
		// already taken (its current block and the one being batched).
		if !equal && rest.Load() < total-4*700 {
			t.Fatalf("unequal: the two other splits got only %d of %d rows", rest.Load(), total)
		}
		// Epoch 2 runs again for all three.
		var got atomic.Int64
		for _, s := range splits {
			wg.Go(func() {
				ids, _ := consume(t, s, nil, false, 0)
				got.Add(int64(len(ids)))
			})
		}
		wg.Wait()
		if want := int64(total); (equal && got.Load() != total/3*3) || (!equal && got.Load() != want) {
			t.Fatalf("equal=%v: epoch 2 read %d rows", equal, got.Load())
		}
	}
}

// countingFS counts bytes read through ReadAt.
type countingFS struct {
	fs.FS
	bytes atomic.Int64
}

func (c *countingFS) Open(name string) (fs.File, error) {
	f, err := c.FS.Open(name)
	if _, ok := f.(io.ReaderAt); err != nil || !ok {
		return f, err // directories pass through
	}
	return countingFile{f, c}, nil
}

type countingFile struct {
	fs.File
	c *countingFS
}

func (f countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.(io.ReaderAt).ReadAt(p, off)
	f.c.bytes.Add(int64(n))
	return n, err
}

// Schema comes from the footers ReadParquet read (one tail read each) and
// never starts an execution.
func TestSplitSchemaReadsOnlyFooter(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	cfs := &countingFS{FS: fsys}
	ds, err := ReadParquet(cfs, "d/*.parquet", &ReadOptions{Columns: []string{"x", "name"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := cfs.bytes.Load(); n == 0 || n > 3*footerGuess {
		t.Fatalf("ReadParquet read %d bytes: more than one footer read per file", n)
	}
	cfs.bytes.Store(0)
	splits := ds.StreamingSplit(2, true)
	sc, err := splits[1].Schema(context.Background())
	if err != nil || sc.NumFields() != 2 || sc.Field(1).Name != "name" {
		t.Fatalf("Schema = %v, %v", sc, err)
	}
	if n := cfs.bytes.Load(); n != 0 {
		t.Fatalf("Schema read %d bytes", n)
	}
}

// A second execution (an epoch) reuses the parsed footers: it reads only
// column-chunk bytes.
func TestFootersParsedOnce(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	cfs := &countingFS{FS: fsys}
	ds, err := ReadParquet(cfs, "d/*.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	collect(t, ds.Iter(context.Background()))
	cfs.bytes.Store(0)
	it := ds.Select("id").Iter(context.Background())
	collect(t, it)
	if got, chunks := cfs.bytes.Load(), it.Stats().FetchedBytes; got != chunks {
		t.Fatalf("second execution read %d bytes, %d of them column chunks", got, chunks)
	}
}
