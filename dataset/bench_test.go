package dataset

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"gocloud.dev/blob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testserver"
)

// benchFiles writes nFiles Parquet files of about fileBytes each (random
// float64 columns compress poorly, so bytes on disk track rows) into the
// fake bucket, and returns the total rows and bytes.
func benchFiles(b *testing.B, srv *testserver.Server, nFiles int, fileBytes int64) (rows, size int64) {
	const cols = 8
	fields := make([]arrow.Field, cols)
	for i := range fields {
		fields[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: arrow.PrimitiveTypes.Float64}
	}
	sc := arrow.NewSchema(fields, nil)
	perFile := fileBytes / (cols * 8)
	for f := range nFiles {
		bld := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		for c := range cols {
			fb := bld.Field(c).(*array.Float64Builder)
			for r := range perFile {
				fb.Append(float64((r*31+int64(c)*7+int64(f))%100003) * 1.000001)
			}
		}
		rec := bld.NewRecordBatch()
		bld.Release()
		tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
		var buf bytesWriter
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(false))
		if err := pqarrow.WriteTable(tbl, &buf, 256<<10, props, pqarrow.DefaultWriterProps()); err != nil {
			b.Fatal(err)
		}
		tbl.Release()
		rec.Release()
		if _, err := srv.PutObject("bench", fmt.Sprintf("scan/part-%03d.parquet", f), buf.b); err != nil {
			b.Fatal(err)
		}
		rows += perFile
		size += int64(len(buf.b))
	}
	return rows, size
}

type bytesWriter struct{ b []byte }

func (w *bytesWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// BenchmarkScan scans a multi-file Parquet dataset (256 MiB by default;
// ZONALREAD_SCAN_MIB overrides) on the shaped HTTP fake: this package
// (footers once, coalesced column-chunk reads through gcsfs, 4 workers)
// against pqarrow reading the same files through plain gocloud range
// readers (its own ReadAt per page, files one after another), reporting
// rows/s and MB/s of Parquet bytes.
func BenchmarkScan(b *testing.B) {
	mib := int64(256)
	if v, err := strconv.ParseInt(os.Getenv("ZONALREAD_SCAN_MIB"), 10, 64); err == nil && v > 0 {
		mib = v
	}
	srv, err := testserver.Start(&testserver.Options{Buckets: []string{"bench"}, NoGRPC: true})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	nFiles := 8
	rows, size := benchFiles(b, srv, nFiles, mib<<20/int64(nFiles))
	srv.HTTP.SetShape(testserver.Shape{Latency: 20 * time.Millisecond, ConnBandwidth: 50 << 20, AggregateBandwidth: 1000 << 20})
	ctx := context.Background()
	bucket, err := srv.OpenBucket(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer bucket.Close()

	report := func(b *testing.B, got int64) {
		if got != rows*int64(b.N) {
			b.Fatalf("read %d rows, want %d", got, rows*int64(b.N))
		}
		secs := b.Elapsed().Seconds()
		b.ReportMetric(float64(got)/secs, "rows/s")
		b.ReportMetric(float64(size)*float64(b.N)/secs/1e6, "MB/s")
	}

	b.Run("dataset", func(b *testing.B) {
		fsys, err := gcsfs.New(ctx, bucket, &gcsfs.Options{BucketName: "bench", Zonal: gcsfs.ZonalOff})
		if err != nil {
			b.Fatal(err)
		}
		defer fsys.Close()
		var got int64
		for b.Loop() {
			ds, err := ReadParquet(fsys, "scan/*.parquet", nil)
			if err != nil {
				b.Fatal(err)
			}
			it := ds.Iter(ctx)
			for it.Next() {
				got += it.Block().Meta.NumRows
			}
			if err := it.Err(); err != nil {
				b.Fatal(err)
			}
			it.Close()
		}
		report(b, got)
	})

	// The same scan as one rank of one (ShardBatches: units read in order,
	// Workers ahead, cut into batches), to compare with the executor.
	b.Run("shard", func(b *testing.B) {
		fsys, err := gcsfs.New(ctx, bucket, &gcsfs.Options{BucketName: "bench", Zonal: gcsfs.ZonalOff})
		if err != nil {
			b.Fatal(err)
		}
		defer fsys.Close()
		var got int64
		for b.Loop() {
			ds, err := ReadParquet(fsys, "scan/*.parquet", nil)
			if err != nil {
				b.Fatal(err)
			}
			it, err := ds.ShardBatches(ctx, ShardOptions{World: 1}, nil, &BatchOptions{BatchSize: 8192})
			if err != nil {
				b.Fatal(err)
			}
			for it.Next() {
				got += it.Batch().Record.NumRows()
			}
			if err := it.Err(); err != nil {
				b.Fatal(err)
			}
			it.Close()
		}
		report(b, got)
	})

	b.Run("pqarrow-rangereaders", func(b *testing.B) {
		var got int64
		for b.Loop() {
			for f := range nFiles {
				got += scanPlain(b, ctx, bucket, fmt.Sprintf("scan/part-%03d.parquet", f))
			}
		}
		report(b, got)
	})
}

// scanPlain reads one file with pqarrow over a ReaderAt that opens a gocloud
// range reader per call: what a user of gocloud blob and arrow-go gets.
func scanPlain(b *testing.B, ctx context.Context, bucket *blob.Bucket, key string) int64 {
	attrs, err := bucket.Attributes(ctx, key)
	if err != nil {
		b.Fatal(err)
	}
	ra := &rangeReaderAt{ctx: ctx, b: bucket, key: key}
	pf, err := file.NewParquetReader(io.NewSectionReader(ra, 0, attrs.Size))
	if err != nil {
		b.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 65536}, memory.DefaultAllocator)
	if err != nil {
		b.Fatal(err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	return n
}

type rangeReaderAt struct {
	ctx context.Context
	b   *blob.Bucket
	key string
}

func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rd, err := r.b.NewRangeReader(r.ctx, r.key, off, int64(len(p)), nil)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	n, err := io.ReadFull(rd, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}
