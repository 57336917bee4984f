package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"
	"testing/fstest"

	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// footerOf splits a Parquet file into its body (up to the footer) and its
// parsed footer.
func footerOf(t testing.TB, file []byte) ([]byte, *metadata.FileMetaData) {
	t.Helper()
	n := len(file)
	flen := int(binary.LittleEndian.Uint32(file[n-8 : n-4]))
	md, err := metadata.NewFileMetaData(file[n-8-flen:n-8], nil)
	if err != nil {
		t.Fatal(err)
	}
	return file[:n-8-flen], md
}

// withFooter is body followed by footer bytes, their length and the magic.
func withFooter(body, footer []byte) []byte {
	out := append(bytes.Clone(body), footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...)
}

// rewrite returns file with its footer changed by edit.
func rewrite(t testing.TB, file []byte, edit func(md *metadata.FileMetaData)) []byte {
	t.Helper()
	body, md := footerOf(t, file)
	edit(md)
	footer, err := md.Serialize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return withFooter(body, footer)
}

// listBomb is a footer whose row_groups list claims 99 million entries
// (792 MB of pointers for a decoder that trusts it) in a few bytes.
func listBomb() []byte {
	b := []byte{0x15, 0x02}                              // field 1 (version): i32 1
	b = append(b, 0x39, 0xfc)                            // field 4 (row_groups, delta 3): list of structs, long size
	b = binary.AppendUvarint(b, 99_000_000)              // under thrift's own 100 MB cap
	return append(b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00) // a few empty structs, then nothing
}

// hostileFiles are hand-crafted footers over a valid file's body.
func hostileFiles(t testing.TB) map[string][]byte {
	good := writeParquet(t, 0, 2000, 1000)
	body, _ := footerOf(t, good)
	return map[string][]byte{
		"offset-near-maxint64.parquet": rewrite(t, good, func(md *metadata.FileMetaData) {
			md.RowGroups[1].Columns[0].MetaData.DataPageOffset = math.MaxInt64 - 5
			md.RowGroups[1].Columns[0].MetaData.DictionaryPageOffset = nil
		}),
		"huge-chunk.parquet": rewrite(t, good, func(md *metadata.FileMetaData) {
			md.RowGroups[0].Columns[1].MetaData.TotalCompressedSize = math.MaxInt64 - 2
		}),
		"negative-rows.parquet": rewrite(t, good, func(md *metadata.FileMetaData) { md.RowGroups[1].NumRows = -25 }),
		"more-chunks-than-leaves.parquet": rewrite(t, good, func(md *metadata.FileMetaData) {
			md.RowGroups[0].Columns = append(md.RowGroups[0].Columns, md.RowGroups[0].Columns...)
		}),
		"list-bomb.parquet":   withFooter(body, listBomb()),
		"footer-len.parquet":  append(bytes.Clone(good[:len(good)-8]), 0xf0, 0xff, 0xff, 0xff, 'P', 'A', 'R', '1'),
		"not-parquet.parquet": bytes.Repeat([]byte("x"), 100),
		"truncated.parquet":   good[:len(good)/2],
	}
}

// Hand-crafted hostile footers give a clear ErrCorrupt from ReadParquet
// and Inspect, never a panic, and allocate next to nothing.
func TestHostileFooters(t *testing.T) {
	for name, data := range hostileFiles(t) {
		fsys := fstest.MapFS{name: {Data: data}}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := ReadParquet(fsys, name, nil)
		_, ierr := Inspect(context.Background(), fsys, name)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) || !errors.Is(ierr, ErrCorrupt) {
			t.Fatalf("%s: ReadParquet = %v, Inspect = %v; want ErrCorrupt", name, err, ierr)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
			t.Fatalf("%s: allocated %d bytes", name, grew)
		}
	}
}

// A footer that passes the checks but claims more rows than the pages
// hold is caught when the row group is decoded; an unreadable file among
// good ones is one errored block under MaxErroredBlocks.
func TestParquetHostileFiles(t *testing.T) {
	good := writeParquet(t, 0, 2000, 1000)
	more := rewrite(t, good, func(md *metadata.FileMetaData) {
		md.RowGroups[1].NumRows = 1500
		md.NumRows = 2500
	})
	fsys := fstest.MapFS{"more.parquet": {Data: more}}
	ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{TargetBlockBytes: 1, PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	it := ds.Iter(context.Background())
	n := 0
	for it.Next() {
		n += int(it.Block().Record.NumRows())
	}
	if err := it.Err(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a row group short of its footer's count: %d rows, %v", n, err)
	}
	it.Close()
}

// Unreadable files (a corrupt footer, a truncated file, a non-Parquet
// file) each count as one errored block: with room for them the rest is
// read and the errors are listed; without, ReadParquet fails.
func TestErroredFilesCounted(t *testing.T) {
	hostile := hostileFiles(t)
	files := map[string][]byte{
		"a.parquet": writeParquet(t, 0, 3000, 1000),
		"b.parquet": hostile["not-parquet.parquet"],
		"c.parquet": writeParquet(t, 3000, 3000, 1000),
		"d.parquet": hostile["truncated.parquet"],
		"e.parquet": hostile["negative-rows.parquet"],
	}
	fsys, _ := memFS(t, files)
	if _, err := ReadParquet(fsys, "*.parquet", &ReadOptions{MaxErroredBlocks: 2}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("3 bad files, MaxErroredBlocks 2: %v", err)
	}
	for _, mode := range []MetadataFetch{Inline, Threaded} {
		ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{MaxErroredBlocks: 3, PreserveOrder: true, MetadataFetch: mode})
		if err != nil {
			t.Fatal(err)
		}
		it := ds.Iter(context.Background())
		checkRows(t, collect(t, it), idRange(0, 6000), "all")
		s := it.Stats()
		if s.ErroredBlocks != 3 || len(s.Errors) != 3 {
			t.Fatalf("%s: %d errored blocks, errors %v", mode, s.ErroredBlocks, s.Errors)
		}
		for _, err := range s.Errors {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: listed error %v", mode, err)
			}
		}
	}
}
