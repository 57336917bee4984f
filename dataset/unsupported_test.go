package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// A codec arrow-go cannot decode (LZ4 with the Hadoop framing) and an
// encrypted file are ErrUnsupported, not ErrCorrupt.
func TestUnsupportedCodec(t *testing.T) {
	good := writeParquet(t, 0, 2000, 1000)
	lz4 := rewrite(t, good, func(md *metadata.FileMetaData) {
		for _, rg := range md.RowGroups {
			for _, cc := range rg.Columns {
				cc.MetaData.Codec = 5 // LZ4
			}
		}
	})
	encrypted := append(bytes.Clone(good[:len(good)-4]), "PARE"...)
	fsys := fstest.MapFS{"lz4.parquet": {Data: lz4}, "enc.parquet": {Data: encrypted}}
	info, err := Inspect(context.Background(), fsys, "lz4.parquet")
	if err != nil || info.RowGroups[0].Compression != "LZ4" {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	ds, err := ReadParquet(fsys, "lz4.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	it := ds.Iter(context.Background())
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("LZ4: %v, want ErrUnsupported", err)
	}
	it.Close()
	if _, err := ReadParquet(fsys, "enc.parquet", nil); !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("encrypted: %v, want ErrUnsupported", err)
	}
}

// A file in the layout of parquet-mr before 1.2.9 (its created_by makes
// arrow-go pad column chunks, bounded by the file size the footer is
// told) reads whole.
func TestOldParquetMRFile(t *testing.T) {
	old := rewrite(t, writeParquet(t, 0, 3000, 1000), func(md *metadata.FileMetaData) {
		v := "parquet-mr version 1.2.8"
		md.CreatedBy = &v
	})
	fsys := fstest.MapFS{"old.parquet": {Data: old}}
	info, err := Inspect(context.Background(), fsys, "old.parquet")
	if err != nil || info.CreatedBy != "parquet-mr version 1.2.8" {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{PreserveOrder: true, TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, collect(t, ds.Iter(context.Background())), idRange(0, 3000), "all")
}

// INT96 timestamps read as nanoseconds; one that does not fit int64
// nanoseconds (the year 3000, patched into the page) is ErrUnsupported
// rather than a corrupt file.
func TestInt96OutOfRange(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_ns, Nullable: true}}, nil)
	noon := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	rec := jsonRecord(t, sc, fmt.Sprintf(`[{"id": 1, "ts": %d}, {"id": 2, "ts": null}]`, noon.UnixNano()))
	defer rec.Release()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(false), parquet.WithStats(false))
	if err := pqarrow.WriteTable(tbl, &buf, 10, props, pqarrow.NewArrowWriterProperties(pqarrow.WithDeprecatedInt96Timestamps(true))); err != nil {
		t.Fatal(err)
	}
	ok := buf.Bytes()
	// The INT96 value as the page holds it (PLAIN, uncompressed):
	// nanoseconds of the day, then the Julian day.
	const julianEpoch, dayNanos = 2440588, int64(86400e9)
	v := binary.LittleEndian.AppendUint64(nil, uint64(noon.UnixNano()%dayNanos))
	v = binary.LittleEndian.AppendUint32(v, uint32(noon.UnixNano()/dayNanos+julianEpoch))
	if bytes.Count(ok, v) != 1 {
		t.Fatalf("INT96 value found %d times", bytes.Count(ok, v))
	}
	far := bytes.Clone(ok)
	at := bytes.Index(far, v)
	binary.LittleEndian.PutUint32(far[at+8:], uint32(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()/86400+julianEpoch))
	fsys := fstest.MapFS{"ok.parquet": {Data: ok}, "far.parquet": {Data: far}}

	ds, err := ReadParquet(fsys, "ok.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts := ds.schema.Field(1).Type; ts.ID() != arrow.TIMESTAMP {
		t.Fatalf("ts read as %s", ts)
	}
	it := ds.Iter(context.Background())
	if !it.Next() {
		t.Fatal(it.Err())
	}
	col := it.Block().Record.Column(1).(*array.Timestamp)
	if col.Value(0) != arrow.Timestamp(noon.UnixNano()) || !col.IsNull(1) {
		t.Fatalf("INT96 read as %v", col)
	}
	it.Close()

	ds, err = ReadParquet(fsys, "far.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	it = ds.Iter(context.Background())
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("year 3000 as INT96: %v, want ErrUnsupported", err)
	}
	it.Close()
}
