package dataset

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/leaktest"
	"github.com/zonalread/zonalread/internal/testserver"
)

// Every test reads with scrubbed fetch buffers: a released buffer is
// overwritten, so a block that aliased one fails the test that reads it.
// Benchmarks do not: scrubbing costs what the pool saves.
func TestMain(m *testing.M) {
	flag.Parse()
	fetchBuffers.scrub = flag.Lookup("test.bench").Value.String() == ""
	leaktest.VerifyTestMain(m)
}

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "x", Type: arrow.PrimitiveTypes.Float64},
	{Name: "name", Type: arrow.BinaryTypes.String},
}, nil)

// row is what a test row holds; values derive from the id.
type row struct {
	id   int64
	x    float64
	name string
}

func rowFor(id int64) row { return row{id, float64(id) * 1.5, fmt.Sprintf("name-%d", id%97)} }

// writeParquet writes rows [first, first+n) with rowGroup rows per row
// group, snappy-compressed.
func writeParquet(t testing.TB, first, n, rowGroup int64) []byte {
	t.Helper()
	return writeParquetWith(t, first, n, rowGroup, parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true)))
}

// writeParquetWith is writeParquet with the writer's properties.
func writeParquetWith(t testing.TB, first, n, rowGroup int64, props *parquet.WriterProperties) []byte {
	t.Helper()
	rec := idBlock(first, n)
	defer rec.Release()
	tbl := array.NewTableFromRecords(testSchema, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, rowGroup, props, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// memFS is a gcsfs.FS over a memblob bucket holding the given files.
func memFS(t testing.TB, files map[string][]byte) (*gcsfs.FS, *blob.Bucket) {
	return memFSOpts(t, files, nil)
}

// memFSWith is memFS with gcsfs options.
func memFSWith(t testing.TB, files map[string][]byte, opts *gcsfs.Options) *gcsfs.FS {
	f, _ := memFSOpts(t, files, opts)
	return f
}

func memFSOpts(t testing.TB, files map[string][]byte, opts *gcsfs.Options) (*gcsfs.FS, *blob.Bucket) {
	t.Helper()
	b := memblob.OpenBucket(nil)
	for name, data := range files {
		if err := b.WriteAll(context.Background(), name, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	f, err := gcsfs.New(context.Background(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		b.Close()
	})
	return f, b
}

// httpFS is memFSOpts over the HTTP fake: a server holding files in
// bucket "pq", and a gcsfs FS on it with opts (BucketName and Zonal set
// here); both close when t ends.
func httpFS(t testing.TB, files map[string][]byte, opts gcsfs.Options) (*testserver.Test, *gcsfs.FS) {
	t.Helper()
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{"pq"}, NoGRPC: true})
	for name, data := range files {
		srv.Put(t, name, data)
	}
	opts.BucketName, opts.Zonal = "pq", gcsfs.ZonalOff
	fsys, err := gcsfs.New(context.Background(), srv.Blob, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return srv, fsys
}

// threeFiles is 3 files of 10 row groups of 1000 rows: ids 0..29999.
func threeFiles(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"d/part-0.parquet": writeParquet(t, 0, 10000, 1000),
		"d/part-1.parquet": writeParquet(t, 10000, 10000, 1000),
		"d/part-2.parquet": writeParquet(t, 20000, 10000, 1000),
		"d/README":         []byte("not parquet, not matched"),
	}
}

// collect drains an iterator into rows, checking every block's metadata.
func collect(t testing.TB, it *Iterator) []row {
	t.Helper()
	defer it.Close()
	var rows []row
	for it.Next() {
		b := it.Block()
		if b.Meta.NumRows != b.Record.NumRows() || b.Meta.SizeBytes <= 0 || b.Meta.Schema == nil || b.Meta.Source == "" {
			t.Fatalf("bad block metadata %+v", b.Meta)
		}
		rows = append(rows, recordRows(t, b.Record)...)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// recordRows reads whichever of id, x, name the record has.
func recordRows(t testing.TB, rec arrow.RecordBatch) []row {
	out := make([]row, rec.NumRows())
	for c, f := range rec.Schema().Fields() {
		col := rec.Column(c)
		for i := range out {
			switch f.Name {
			case "id":
				out[i].id = col.(*array.Int64).Value(i)
			case "x":
				out[i].x = col.(*array.Float64).Value(i)
			case "name":
				out[i].name = col.(*array.String).Value(i)
			}
		}
	}
	return out
}

func checkRows(t testing.TB, got []row, ids []int64, cols string) {
	t.Helper()
	if len(got) != len(ids) {
		t.Fatalf("%d rows, want %d", len(got), len(ids))
	}
	for i, r := range got {
		want := rowFor(ids[i])
		switch cols {
		case "id":
			want = row{id: want.id}
		case "x,id":
			want.name = ""
		}
		if r != want {
			t.Fatalf("row %d = %+v, want %+v", i, r, want)
		}
	}
}

func idRange(from, to int64) []int64 {
	var ids []int64
	for i := from; i < to; i++ {
		ids = append(ids, i)
	}
	return ids
}
