package dataset

import (
	"context"
	"encoding/binary"
	"testing"
	"testing/fstest"

	"github.com/apache/arrow-go/v18/arrow"
)

// fuzzSeeds are files the tests write: flat, nested, narrow, and the
// hand-crafted hostile ones.
func fuzzSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{writeParquet(t, 0, 300, 100)}
	rec := jsonRecord(t, nestedSchema, nestedJSON(50))
	seeds = append(seeds, writeRecord(t, rec, 20))
	rec.Release()
	files, _ := driftFiles(t)
	seeds = append(seeds, files["f2.parquet"], files["f3.parquet"])
	for _, f := range hostileFiles(t) {
		seeds = append(seeds, f)
	}
	return seeds
}

// readAll reads a file every way the package offers; it must not panic or
// hang, whatever the bytes.
func readAll(t *testing.T, data []byte) {
	fsys := fstest.MapFS{"f.parquet": {Data: data}}
	Inspect(context.Background(), fsys, "f.parquet")
	ds, err := ReadParquet(fsys, "f.parquet", &ReadOptions{BatchRows: 64, MaxErroredBlocks: -1})
	if err != nil {
		return
	}
	it := ds.Iter(context.Background())
	for it.Next() {
		if sc, _ := ds.Schema(context.Background()); !it.Block().Record.Schema().Equal(sc) {
			t.Fatalf("block schema %s, Schema() %s", it.Block().Record.Schema(), sc)
		}
	}
	it.Close()
	bi := ds.Filter(func(rec arrow.RecordBatch) ([]bool, error) { return make([]bool, rec.NumRows()), nil }).Batches(context.Background(), nil)
	for bi.Next() {
	}
	bi.Close()
}

// FuzzParquetFile mutates whole files (footer and pages).
func FuzzParquetFile(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { readAll(t, data) })
}

// FuzzParquetFooter mutates footers only, over the seed file's body.
func FuzzParquetFooter(f *testing.F) {
	seeds := fuzzSeeds(f)
	body, _ := footerOf(f, seeds[0])
	for _, s := range seeds {
		if n := len(s); n >= 12 {
			if flen := int(binary.LittleEndian.Uint32(s[n-8 : n-4])); flen <= n-12 {
				f.Add(s[n-8-flen : n-8])
			}
		}
	}
	f.Fuzz(func(t *testing.T, footer []byte) { readAll(t, withFooter(body, footer)) })
}
