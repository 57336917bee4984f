package dataset_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/dataset"
	"github.com/zonalread/zonalread/gcsfs"
)

// Write two Parquet files to a bucket, then stream them back in batches of
// 4 rows, two splits with equal row counts.
func Example() {
	ctx := context.Background()
	fsys, closeFS := intFiles(ctx, 2)
	defer closeFS()

	ds, err := dataset.ReadParquet(fsys, "t/*.parquet", &dataset.ReadOptions{PreserveOrder: true})
	if err != nil {
		panic(err)
	}
	batches := ds.Batches(ctx, &dataset.BatchOptions{BatchSize: 4})
	for batches.Next() {
		fmt.Println(batches.Batch().Record.Column(0))
	}
	batches.Close()

	splits := ds.StreamingSplit(2, true)
	for i, s := range splits {
		it, err := s.Iter(ctx)
		if err != nil {
			panic(err)
		}
		rows := int64(0)
		for it.Next() {
			rows += it.Block().Meta.NumRows
		}
		it.Close()
		fmt.Printf("split %d: %d rows\n", i, rows)
	}
	// Output:
	// [0 1 2 3]
	// [4 5 6 7]
	// [8 9 10 11]
	// [12 13 14 15]
	// [16 17 18 19]
	// split 0: 10 rows
	// split 1: 10 rows
}

// Files whose columns differ read as one schema, matched by name: a column
// a file lacks is null, int32 widens to int64.
func ExampleReadParquetContext() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	write := func(name string, sc *arrow.Schema, rows string) {
		rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, sc, bytes.NewReader([]byte(rows)))
		if err != nil {
			panic(err)
		}
		defer rec.Release()
		tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
		defer tbl.Release()
		var buf bytes.Buffer
		if err := pqarrow.WriteTable(tbl, &buf, 10, nil, pqarrow.DefaultWriterProps()); err != nil {
			panic(err)
		}
		bucket.WriteAll(ctx, name, buf.Bytes(), nil)
	}
	write("1.parquet", arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}}, nil), `[{"id": 1}]`)
	write("2.parquet", arrow.NewSchema([]arrow.Field{{Name: "name", Type: arrow.BinaryTypes.String}, {Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil), `[{"id": 2, "name": "two"}]`)
	fsys, err := gcsfs.New(ctx, bucket, nil)
	if err != nil {
		panic(err)
	}
	defer fsys.Close()

	ds, err := dataset.ReadParquetContext(ctx, fsys, "*.parquet", &dataset.ReadOptions{PreserveOrder: true})
	if err != nil {
		panic(err)
	}
	sc, _ := ds.Schema(ctx)
	for _, f := range sc.Fields() {
		fmt.Printf("%s: %s\n", f.Name, f.Type)
	}
	it := ds.Iter(ctx)
	defer it.Close()
	for it.Next() {
		rec := it.Block().Record
		fmt.Println(rec.Column(0), rec.Column(1))
	}
	// Output:
	// id: int64
	// name: utf8
	// [1] [(null)]
	// [2] ["two"]
}

// intFiles is a gcsfs.FS over an in-memory bucket holding files
// t/0.parquet ... of 10 int64 values "v" each (0-9, 10-19, ...) in row
// groups of 5; closeFS closes both.
func intFiles(ctx context.Context, files int) (fsys *gcsfs.FS, closeFS func()) {
	bucket := memblob.OpenBucket(nil)
	for f := range files {
		writeInts(ctx, bucket, fmt.Sprintf("t/%d.parquet", f), int64(f*10), 10, 5)
	}
	fsys, err := gcsfs.New(ctx, bucket, nil)
	if err != nil {
		panic(err)
	}
	return fsys, func() { fsys.Close(); bucket.Close() }
}

// writeInts writes a Parquet file of one int64 column "v" holding first,
// first+1, ... (n values, rowGroup rows per row group) to bucket.
func writeInts(ctx context.Context, bucket *blob.Bucket, name string, first, n, rowGroup int64) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(first + i)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, rowGroup, nil, pqarrow.DefaultWriterProps()); err != nil {
		panic(err)
	}
	if err := bucket.WriteAll(ctx, name, buf.Bytes(), nil); err != nil {
		panic(err)
	}
}

// A Limit stops the reads as soon as it can be met: with one worker, the
// first read task (one row group of 5 rows) covers a Limit of 3, so no
// other task starts. Stats counts what the execution did.
func ExampleIterator_Stats() {
	ctx := context.Background()
	fsys, closeFS := intFiles(ctx, 4)
	defer closeFS()

	ds, err := dataset.ReadParquet(fsys, "t/*.parquet", &dataset.ReadOptions{Workers: 1, TargetBlockBytes: 1, PreserveOrder: true})
	if err != nil {
		panic(err)
	}
	it := ds.Limit(3).Iter(ctx)
	defer it.Close()
	for it.Next() {
		fmt.Println(it.Block().Record.Column(0))
	}
	if err := it.Err(); err != nil {
		panic(err)
	}
	st := it.Stats()
	fmt.Printf("read tasks: %d, rows read: %d, errored blocks: %d\n", st.Read.Tasks, st.Read.Rows, st.ErroredBlocks)
	// Output:
	// [0 1 2]
	// read tasks: 1, rows read: 5, errored blocks: 0
}
