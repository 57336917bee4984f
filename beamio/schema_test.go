package beamio

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zonalread/zonalread/dataset"
	"github.com/zonalread/zonalread/gcsfs"
)

// oddFile is 100 rows of ids [1000, 1100) whose val is float32 and which
// has no key column, as a file written by another tool might be.
func oddFile(t *testing.T) []byte {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "val", Type: arrow.PrimitiveTypes.Float32},
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for id := int64(1000); id < 1100; id++ {
		b.Field(0).(*array.Float32Builder).Append(float32(id) / 4)
		b.Field(1).(*array.Int64Builder).Append(id)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return writeRecord(t, rec, 30)
}

// Batches have the dataset's unified schema, as the core computes it, with
// and without a projection: a float32 column reads as float64, a column a
// file lacks as nulls, and Columns picks and orders the fields.
func TestBatchesHaveTheUnifiedSchema(t *testing.T) {
	noLeaks(t)
	startServer(t, map[string][]byte{"data/a.parquet": writeParquet(t, 0, 1000, 250), "data/b.parquet": oddFile(t)})
	for _, cols := range [][]string{nil, {"val", "id"}} {
		want := coreSchema(t, cols)
		e := planFor(t, &ReadOptions{Columns: cols, TargetBlockBytes: 1})
		fn := &readFn{SplitBytes: DefaultSplitBytes}
		var rows int64
		err := fn.ProcessElement(context.Background(), fn.CreateTracker(fn.CreateInitialRestriction(e)), e, func(b Batch) {
			defer b.Record.Release()
			if !sameFields(b.Record.Schema(), want) {
				t.Errorf("columns %q: batch of %s has schema %v, the dataset's is %v", cols, b.Source, b.Record.Schema(), want)
			}
			val := b.Record.Column(want.FieldIndices("val")[0]).(*array.Float64)
			id := b.Record.Column(want.FieldIndices("id")[0]).(*array.Int64)
			for i := range int(b.Record.NumRows()) {
				w := rowFor(id.Value(i)).val
				if id.Value(i) >= 1000 {
					w = float64(float32(id.Value(i)) / 4)
				}
				if val.Value(i) != w {
					t.Fatalf("id %d: val %v, written %v", id.Value(i), val.Value(i), w)
				}
				if k := want.FieldIndices("key"); len(k) == 1 && b.Record.Column(k[0]).IsValid(i) != (id.Value(i) < 1000) {
					t.Fatalf("id %d: key valid %v", id.Value(i), b.Record.Column(k[0]).IsValid(i))
				}
			}
			rows += b.Record.NumRows()
		})
		fn.Teardown()
		if err != nil || rows != 1100 {
			t.Fatalf("columns %q: %d rows, %v; want 1100", cols, rows, err)
		}
	}
}

// coreSchema is the schema dataset.ReadParquet gives the test files.
func coreSchema(t *testing.T, cols []string) *arrow.Schema {
	t.Helper()
	ctx := context.Background()
	fsys, err := gcsfs.Open(ctx, testURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	ds, err := dataset.ReadParquet(fsys, testPattern, &dataset.ReadOptions{Columns: cols})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ds.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cols != nil && (sc.NumFields() != 2 || sc.Field(0).Name != "val") {
		t.Fatalf("core schema %v for columns %q", sc, cols)
	}
	return sc
}
