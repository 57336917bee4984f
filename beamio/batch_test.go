package beamio

import (
	"bytes"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// testRecord is rows [first, first+n) of testSchema.
func testRecord(first, n int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, testSchema)
	defer b.Release()
	for id := first; id < first+n; id++ {
		r := rowFor(id)
		b.Field(0).(*array.Int64Builder).Append(r.id)
		b.Field(1).(*array.StringBuilder).Append(r.key)
		b.Field(2).(*array.Float64Builder).Append(r.val)
	}
	return b.NewRecordBatch()
}

// A Batch survives its coder: same rows by value, same schema, same
// source and unit; a batch without a record too.
func TestBatchCoderRoundTrip(t *testing.T) {
	rec := testRecord(40, 300)
	defer rec.Release()
	for _, in := range []Batch{{Record: rec, Source: "data/part-1.parquet", Unit: 7}, {Source: "empty", Unit: -1}} {
		data, err := EncodeBatch(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeBatch(data)
		if err != nil {
			t.Fatal(err)
		}
		if out.Source != in.Source || out.Unit != in.Unit || (out.Record == nil) != (in.Record == nil) {
			t.Fatalf("decoded %+v, encoded %+v", out, in)
		}
		if in.Record == nil {
			continue
		}
		if !array.RecordEqual(out.Record, in.Record) {
			t.Fatalf("decoded record differs from the encoded one")
		}
		rows := recordRows(t, out.Record)
		for i, r := range rows {
			if r != rowFor(40+int64(i)) {
				t.Fatalf("row %d = %+v, want %+v", i, r, rowFor(40+int64(i)))
			}
		}
		out.Record.Release()
	}
}

// DecodeBatch rejects bytes that are not one encoded batch: truncated at
// any point, with trailing bytes, with a wrong format byte, or empty.
func TestDecodeBatchRejects(t *testing.T) {
	rec := testRecord(0, 50)
	defer rec.Release()
	data, err := EncodeBatch(Batch{Record: rec, Source: "s", Unit: 1})
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{nil, {2}, append(bytes.Clone(data), 0, 0, 0, 0), {batchFormat, 2, 200}}
	for n := 1; n < len(data); n += max(1, len(data)/97) {
		if n != 4 { // header only ("s", unit 1, no record) is a valid record-less batch
			bad = append(bad, data[:n])
		}
	}
	for _, b := range bad {
		out, err := DecodeBatch(b)
		if !errors.Is(err, ErrBadBatch) {
			t.Fatalf("DecodeBatch of %d bytes (of %d): %+v, %v; want ErrBadBatch", len(b), len(data), out, err)
		}
	}
}
