package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// sampleParquet is rows (id, city) with rowGroup rows per row group.
func sampleParquet(t testing.TB, rows, rowGroup int) []byte {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "city", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	cities := []string{"Paris", "Lagos", "Lima", "Osaka"}
	for i := range rows {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(cities[i%len(cities)])
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	if err := pqarrow.WriteTable(tbl, &buf, int64(rowGroup), props, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParquet(t *testing.T) {
	f := startFake(t)
	if _, err := f.srv.PutObject(testBucket, "t/cities.parquet", sampleParquet(t, 2500, 1000)); err != nil {
		t.Fatal(err)
	}
	r := gcscat(t, "parquet", "gs://"+testBucket+"/t/cities.parquet")
	r.check(t, 0, "")
	for _, want := range []string{"2500 rows in 3 row groups", "id: int64", "city: utf8 (nullable)", "snappy", "1000", "500"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "first") {
		t.Fatal("rows printed without --rows")
	}

	r = gcscat(t, "parquet", "--rows", "5", "gs://"+testBucket+"/t/cities.parquet")
	r.check(t, 0, "")
	if !strings.Contains(r.stdout, "first 5 rows:") || !strings.Contains(r.stdout, "4   Paris") || strings.Contains(r.stdout, "5   Lagos") {
		t.Fatalf("rows:\n%s", r.stdout)
	}

	gcscat(t, "parquet", "gs://"+testBucket+"/small.txt").check(t, 1, "corrupt parquet file")
	gcscat(t, "parquet", "gs://"+testBucket+"/missing.parquet").check(t, 1, "no such object")
	gcscat(t, "parquet").check(t, 2, "want exactly one URL")
	gcscat(t, "parquet", "--rows", "-1", "gs://"+testBucket+"/t/cities.parquet").check(t, 2, "--rows must not be negative")
}
