package dataset

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"slices"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestReadAllRowsInOrder(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	for _, mode := range []MetadataFetch{Threaded, Inline} {
		ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true, MetadataFetch: mode, BatchRows: 300, TargetBlockBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Files()) != 3 {
			t.Fatalf("files %v", ds.Files())
		}
		it := ds.Iter(context.Background())
		checkRows(t, collect(t, it), idRange(0, 30000), "all")
		s := it.Stats()
		if s.Read.Tasks != 30 || s.Read.Rows != 30000 || s.Fallbacks != 0 {
			t.Fatalf("%s: stats %+v", mode, s)
		}
	}
}

func TestUnorderedHasEveryRowOnce(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, ds.Iter(context.Background()))
	slices.SortFunc(got, func(a, b row) int { return int(a.id - b.id) })
	checkRows(t, got, idRange(0, 30000), "all")
}

// Projection reaches the read: only the selected column chunks are fetched,
// in one coalesced range per row group.
func TestProjectionAndCoalescing(t *testing.T) {
	files := threeFiles(t)
	fsys, _ := memFS(t, files)
	full, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true, TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	it := full.Iter(context.Background())
	collect(t, it)
	all := it.Stats()
	// Adjacent chunks of a row group coalesce into one ranged read.
	if all.Ranges != all.Read.Tasks {
		t.Fatalf("%d ranged reads for %d tasks: chunks not coalesced", all.Ranges, all.Read.Tasks)
	}

	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{Columns: []string{"id"}, PreserveOrder: true, CoalesceGap: 1})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ds.Schema(context.Background())
	if err != nil || sc.NumFields() != 1 || sc.Field(0).Name != "id" {
		t.Fatalf("Schema = %v, %v", sc, err)
	}
	it = ds.Iter(context.Background())
	checkRows(t, collect(t, it), idRange(0, 30000), "id")
	proj := it.Stats()
	if proj.FetchedBytes*2 > all.FetchedBytes || proj.Fallbacks != 0 {
		t.Fatalf("projection fetched %d of %d bytes (fallbacks %d)", proj.FetchedBytes, all.FetchedBytes, proj.Fallbacks)
	}
}

func TestSmallRowGroupsMerged(t *testing.T) {
	fsys, _ := memFS(t, map[string][]byte{"f.parquet": writeParquet(t, 0, 5000, 100)})
	ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{TargetBlockBytes: 1 << 20, PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	it := ds.Iter(context.Background())
	checkRows(t, collect(t, it), idRange(0, 5000), "all")
	if n := it.Stats().Read.Tasks; n >= 50 || n == 0 {
		t.Fatalf("%d tasks for 50 small row groups: not merged", n)
	}
}

func TestOperators(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	even := ds.Filter(func(rec arrow.RecordBatch) ([]bool, error) {
		ids := rec.Column(0).(*array.Int64)
		keep := make([]bool, ids.Len())
		for i := range keep {
			keep[i] = ids.Value(i)%2 == 0
		}
		return keep, nil
	}).Select("x", "id")
	var want []int64
	for i := int64(0); i < 30000; i += 2 {
		want = append(want, i)
	}
	checkRows(t, collect(t, even.Iter(context.Background())), want, "x,id")

	// Map that replaces the record.
	doubled := ds.Select("id").MapBatches(func(_ context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		ids := rec.Column(0).(*array.Int64)
		b := array.NewInt64Builder(memory.DefaultAllocator)
		defer b.Release()
		for i := range ids.Len() {
			b.Append(ids.Value(i) * 2)
		}
		arr := b.NewArray()
		defer arr.Release()
		return array.NewRecordBatch(rec.Schema(), []arrow.Array{arr}, rec.NumRows()), nil
	}, 2)
	it := doubled.Iter(context.Background())
	got := collect(t, it)
	for i, r := range got {
		if r.id != int64(2*i) {
			t.Fatalf("row %d: id %d", i, r.id)
		}
	}
	if ops := it.Stats().Ops; len(ops) != 2 || ops[1].Rows != 30000 || ops[1].Tasks == 0 {
		t.Fatalf("op stats %+v", ops)
	}
}

// Limit stops upstream reads once satisfied; operators after it see only
// the limited rows.
func TestLimitStopsReads(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true, Workers: 2, TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	it := ds.Limit(2500).Iter(context.Background())
	checkRows(t, collect(t, it), idRange(0, 2500), "all")
	if n := it.Stats().Read.Tasks; n >= 10 {
		t.Fatalf("%d of 30 tasks read for 2500 rows", n)
	}
	// An operator after the limit, and a second limit.
	it = ds.Limit(2500).Select("id").Limit(10).Iter(context.Background())
	checkRows(t, collect(t, it), idRange(0, 10), "id")
	if n := collect(t, ds.Limit(0).Iter(context.Background())); len(n) != 0 {
		t.Fatalf("Limit(0) gave %d rows", len(n))
	}
}

func TestMissingAndCorrupt(t *testing.T) {
	good := writeParquet(t, 0, 4000, 1000)
	// Flip bytes inside the data of row group 1 (between its first chunk's
	// start and the next row group).
	badPage := append([]byte(nil), good...)
	fsys0, _ := memFS(t, map[string][]byte{"a.parquet": good})
	ds0, _ := ReadParquet(fsys0, "*.parquet", nil)
	src, err := openSource(context.Background(), ds0.fsys, "a.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	md, err := readFooter(context.Background(), src)
	src.c.Close()
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := md.RowGroup(1).ColumnChunk(0)
	for i := cc.DataPageOffset() + 2; i < cc.DataPageOffset()+30; i++ {
		badPage[i] ^= 0x5a
	}
	fsys, bucket := memFS(t, map[string][]byte{
		"ok.parquet":     good,
		"footer.parquet": append([]byte("PAR1 not really"), []byte("\x05\x00\x00\x00PAR1")...),
		"page.parquet":   badPage,
	})

	if _, err := ReadParquet(fsys, "nothing/*.parquet", nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty glob = %v", err)
	}

	// A corrupt footer fails ReadParquet, which reads every footer.
	if _, err := ReadParquet(fsys, "footer.parquet", nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt footer = %v, want ErrCorrupt", err)
	}

	ds, _ := ReadParquet(fsys, "page.parquet", &ReadOptions{Columns: []string{"id"}})
	it := ds.Iter(context.Background())
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt page = %v, want ErrCorrupt", err)
	}
	it.Close()

	// With MaxErroredBlocks the rest is read: every row but row group 1's.
	ds, _ = ReadParquet(fsys, "page.parquet", &ReadOptions{Columns: []string{"id"}, MaxErroredBlocks: 1, PreserveOrder: true, TargetBlockBytes: 1})
	it = ds.Iter(context.Background())
	got := collect(t, it)
	checkRows(t, got, append(idRange(0, 1000), idRange(2000, 4000)...), "id")
	if it.Stats().ErroredBlocks != 1 {
		t.Fatalf("errored %d", it.Stats().ErroredBlocks)
	}

	// A file deleted after planning: a clear error wrapping ErrNotExist.
	ds, _ = ReadParquet(fsys, "ok.parquet", nil)
	bucket.Delete(context.Background(), "ok.parquet")
	it = ds.Iter(context.Background())
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file = %v, want ErrNotExist", err)
	}
	it.Close()
}

func TestCancelAndEarlyClose(t *testing.T) {
	fsys, _ := memFS(t, threeFiles(t))
	ds, _ := ReadParquet(fsys, "d/*.parquet", &ReadOptions{BatchRows: 100})
	it := ds.Iter(context.Background())
	if !it.Next() {
		t.Fatal(it.Err())
	}
	it.Close() // early: releases everything, leaks nothing (goleak)
	it.Close()

	ctx, cancel := context.WithCancel(context.Background())
	it = ds.Iter(ctx)
	it.Next()
	cancel()
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled = %v", err)
	}
	it.Close()
}

// statCounter is an fs.FS that counts Stat calls (fs.Stat and the Stat of
// opened files).
type statCounter struct {
	fstest.MapFS
	stats atomic.Int64
}

func (c *statCounter) Stat(name string) (fs.FileInfo, error) {
	c.stats.Add(1)
	return c.MapFS.Stat(name)
}

// A pattern with wildcards only in its last element is answered by one
// listing: no stat per match (two round trips before the first footer on
// a bucket), directories that match left out, files elsewhere not
// matched; a pattern with a wildcard directory still globs, and both
// find the same files.
func TestReadParquetListsOnce(t *testing.T) {
	data := writeParquet(t, 0, 10, 5)
	fsys := &statCounter{MapFS: fstest.MapFS{
		"d/a.parquet":         {Data: data},
		"d/b.parquet":         {Data: data},
		"d/c.csv":             {Data: []byte("x")},
		"d/sub.parquet/x.bin": {Data: []byte("x")}, // a directory that matches
		"e/a.parquet":         {Data: data},
		"d/deeper/z.parquet":  {Data: data},
		"top.parquet":         {Data: data},
	}}
	for _, c := range []struct {
		pattern string
		want    []string
		stats   bool // whether the matches may be stat'ed
	}{
		{"d/*.parquet", []string{"d/a.parquet", "d/b.parquet"}, false},
		{"*.parquet", []string{"top.parquet"}, false},
		{"?/a.parquet", []string{"d/a.parquet", "e/a.parquet"}, true},
		{"d/a.parquet", []string{"d/a.parquet"}, true},
	} {
		fsys.stats.Store(0)
		matched, err := matchFiles(context.Background(), fsys, c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		var got []string
		for _, m := range matched {
			got = append(got, m.name)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s matched %q, want %q", c.pattern, got, c.want)
		}
		if n := fsys.stats.Load(); !c.stats && n != 0 {
			t.Errorf("%s: %d stats, want none", c.pattern, n)
		}
	}
	for _, bad := range []string{"d/[", "[/*.parquet"} {
		if _, err := ReadParquet(fsys, bad, nil); !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("ReadParquet(%q) = %v, want ErrBadPattern", bad, err)
		}
	}
	for _, none := range []string{"nope/*.parquet", "top.parquet/*.parquet"} {
		if _, err := ReadParquet(fsys, none, nil); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadParquet(%q) = %v, want ErrNotExist (nothing matches)", none, err)
		}
	}
	// A listing that fails is reported, not taken for "no files".
	failing := failingLister{fsys}
	if _, err := matchFiles(context.Background(), failing, "d/*.parquet"); !errors.Is(err, errListing) {
		t.Errorf("failed listing: %v, want it returned", err)
	}
	ds, err := ReadParquet(fsys, "d/*.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Files(); !slices.Equal(got, []string{"d/a.parquet", "d/b.parquet"}) {
		t.Errorf("dataset files %q", got)
	}
}

var errListing = errors.New("listing failed")

// failingLister is an FS whose directory listings fail (a server gone).
type failingLister struct{ fs.StatFS }

func (failingLister) Open(name string) (fs.File, error) { return nil, errListing }

func (failingLister) ReadDir(string) ([]fs.DirEntry, error) { return nil, errListing }
