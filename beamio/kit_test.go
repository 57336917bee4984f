package beamio

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zonalread/zonalread/internal/testserver"
)

// The test datasets live in this bucket of the fake server, under data/.
const (
	testBucket  = "beam"
	testURL     = "gs://" + testBucket + "?zonal=false"
	testPattern = "data/*.parquet"
)

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "val", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// row is one test row; its values derive from its id.
type row struct {
	id  int64
	key string
	val float64
}

func rowFor(id int64) row { return row{id, fmt.Sprintf("k%02d", id%13), float64(id)*0.25 - 7} }

// writeParquet writes rows [first, first+n) in row groups of rowGroup rows.
func writeParquet(t testing.TB, first, n, rowGroup int64) []byte {
	t.Helper()
	rec := testRecord(first, n)
	defer rec.Release()
	return writeRecord(t, rec, rowGroup)
}

// writeRecord writes rec as a Parquet file of row groups of rowGroup rows.
func writeRecord(t testing.TB, rec arrow.RecordBatch, rowGroup int64) []byte {
	t.Helper()
	tbl := array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	if err := pqarrow.WriteTable(tbl, &buf, rowGroup, props, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testFiles is the dataset of the tests: files of many row groups, ids
// 0..files*groups*rowsPerGroup-1, in data/ (and one file the pattern does
// not match).
func testFiles(t testing.TB, files, groups, rowsPerGroup int64) map[string][]byte {
	out := map[string][]byte{"other/skip.parquet": writeParquet(t, -100, 50, 50)}
	per := groups * rowsPerGroup
	for f := range files {
		out[fmt.Sprintf("data/part-%d.parquet", f)] = writeParquet(t, f*per, per, rowsPerGroup)
	}
	return out
}

// startServer starts a fake GCS server holding files in testBucket and
// points gs:// at it for the test (STORAGE_EMULATOR_HOST).
func startServer(t *testing.T, files map[string][]byte) *testserver.Server {
	t.Helper()
	srv, err := testserver.Start(&testserver.Options{Buckets: []string{testBucket}, NoGRPC: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for name, data := range files {
		if _, err := srv.PutObject(testBucket, name, data); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.HTTPURL(), "http://"))
	return srv
}

// recordRows reads the rows of a record of testSchema.
func recordRows(t testing.TB, rec arrow.RecordBatch) []row {
	t.Helper()
	if !sameFields(rec.Schema(), testSchema) {
		t.Fatalf("schema %v, want %v", rec.Schema(), testSchema)
	}
	return batchRows(Batch{Record: rec})
}

// sameFields reports whether a and b have the same field names, types and
// nullability, in order (the metadata the Parquet reader adds aside).
func sameFields(a, b *arrow.Schema) bool {
	if a.NumFields() != b.NumFields() {
		return false
	}
	for i, f := range a.Fields() {
		g := b.Field(i)
		if f.Name != g.Name || f.Nullable != g.Nullable || !arrow.TypeEqual(f.Type, g.Type) {
			return false
		}
	}
	return true
}

// checkRows fails unless rows hold each id of [0, n) exactly once, with
// the values written for it.
func checkRows(t testing.TB, rows []row, n int64) {
	t.Helper()
	seen := make([]int, n)
	for _, r := range rows {
		if r.id < 0 || r.id >= n {
			t.Fatalf("row %+v: id outside [0, %d)", r, n)
		}
		if seen[r.id]++; seen[r.id] > 1 {
			t.Fatalf("row %d read %d times", r.id, seen[r.id])
		}
		if want := rowFor(r.id); r != want {
			t.Fatalf("row %+v, written %+v", r, want)
		}
	}
	if int64(len(rows)) != n {
		t.Fatalf("%d rows read, %d written", len(rows), n)
	}
}

// chunkSpans is, for each row group of the Parquet file data, the bytes
// from the first byte of its first column chunk to the end of its last:
// what reading it alone fetches (its chunks are neighbours).
func chunkSpans(t testing.TB, data []byte) []int64 {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.MetaData()
	out := make([]int64, md.NumRowGroups())
	for rg := range out {
		lo, hi := int64(-1), int64(0)
		for c := range md.RowGroup(rg).NumColumns() {
			cc, err := md.RowGroup(rg).ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			if lo < 0 || start < lo {
				lo = start
			}
			hi = max(hi, start+cc.TotalCompressedSize())
		}
		out[rg] = hi - lo
	}
	return out
}

// planFor runs planFn as a runner would, and returns its one element.
func planFor(t testing.TB, opts *ReadOptions) plannedRead {
	t.Helper()
	o := opts.normalize()
	fn := &planFn{URL: testURL, Pattern: testPattern, Columns: o.Columns, TargetBlockBytes: o.TargetBlockBytes, BatchRows: o.BatchRows, CoalesceGap: o.CoalesceGap}
	var got []plannedRead
	if err := fn.ProcessElement(context.Background(), nil, func(e plannedRead) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("planFn emitted %d elements, want 1", len(got))
	}
	return got[0]
}

// batchRows is the rows of b, for code without a testing.TB (a DoFn); a
// record of another schema yields no rows, which checkRows then reports.
func batchRows(b Batch) []row {
	if b.Record == nil || !sameFields(b.Record.Schema(), testSchema) {
		return nil
	}
	ids := b.Record.Column(0).(*array.Int64)
	keys := b.Record.Column(1).(*array.String)
	vals := b.Record.Column(2).(*array.Float64)
	out := make([]row, b.Record.NumRows())
	for i := range out {
		out[i] = row{ids.Value(i), keys.Value(i), vals.Value(i)}
	}
	return out
}
