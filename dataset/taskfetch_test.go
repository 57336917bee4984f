package dataset

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// The tasks of one file fetched at once each bring their own GETs: over
// HTTP a gcsfs file's GETs are bounded per handle (PoolSize), so tasks that
// shared the file's handle fetched a big file at the rate of PoolSize
// connections, whatever Workers was. Every GET stalls here, so the
// requests pile up to what the client allows at once: Workers fetches of
// PoolSize GETs each, where sharing the handle held them to PoolSize.
func TestTasksOfOneFileFetchOnHandlesOfTheirOwn(t *testing.T) {
	const poolSize, workers = 1, 4
	srv, fsys := httpFS(t, map[string][]byte{"big/part-0.parquet": writeParquet(t, 0, 40000, 1000)}, gcsfs.Options{PoolSize: poolSize, Concurrency: poolSize})
	ctx := context.Background()
	ds, err := ReadParquet(fsys, "big/*.parquet", &ReadOptions{Workers: workers, TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the planning's requests to end", func() bool { return srv.HTTP.Stats().InFlight == 0 })
	srv.HTTP.ResetStats()
	srv.HTTP.AddFault(testserver.Fault{Kind: testserver.FaultStall, Object: "big/part-0.parquet"})

	ctx, cancel := context.WithCancel(ctx)
	it := ds.Iter(ctx)
	done := make(chan bool)
	go func() { done <- it.Next() }()
	testkit.WaitFor(t, "a stalled GET from every worker", func() bool { return srv.HTTP.Stats().InFlight >= workers*poolSize })
	cancel()
	if <-done {
		t.Fatal("Next returned a block while every GET stalled")
	}
	if err := it.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after a cancel mid-fetch: %v, want context.Canceled", err)
	}
	it.Close()
	if st := srv.HTTP.Stats(); st.MaxInFlight < workers*poolSize || st.Requests < workers*poolSize {
		t.Fatalf("%d requests, %d at once: want %d, one per task", st.Requests, st.MaxInFlight, workers*poolSize)
	}
}

// Fetch buffers are reused (fetchBuffers), so no block may point into one
// once its task's decode has ended: every released buffer is scrubbed in
// this package's tests (TestMain), and the rows read here, from files of
// every page layout arrow-go reads without copying into a buffer of its
// own where it could (uncompressed, plain; and snappy with dictionaries),
// are checked by value after the whole scan, long after their buffers were
// reused by later tasks.
func TestBlocksOutliveTheirFetchBuffers(t *testing.T) {
	plain := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed), parquet.WithDictionaryDefault(false))
	snappy := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true))
	_, fsys := httpFS(t, map[string][]byte{
		"d/part-0.parquet": writeParquetWith(t, 0, 60000, 20000, plain),
		"d/part-1.parquet": writeParquetWith(t, 60000, 60000, 20000, snappy),
	}, gcsfs.Options{})
	ctx := context.Background()
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{Workers: 2, TargetBlockBytes: 1, PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	released := fetchBuffers.released.Load()
	it := ds.Iter(ctx)
	defer it.Close()
	var held []arrow.RecordBatch
	for it.Next() {
		rec := it.Block().Record
		rec.Retain()
		held = append(held, rec)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if n := fetchBuffers.released.Load() - released; n < 6 {
		t.Fatalf("%d fetch buffers released for 6 row groups: the scan did not reuse them", n)
	}
	var rows []row
	for _, rec := range held {
		rows = append(rows, recordRows(t, rec)...)
		rec.Release()
	}
	checkRows(t, rows, idRange(0, 120000), "id,x,name")
}

// The dataset's CoalesceGap decides what a task fetches, and the budget
// counts it: the server sends exactly the bytes the execution counts as
// fetched. (gcsfs's ReadRanges merged the task's ranges again under its
// own, larger gap, so a task held up to 2x the bytes it counted.)
func TestFetchedBytesAreWhatTheServerSent(t *testing.T) {
	srv, fsys := httpFS(t, map[string][]byte{"d/part-0.parquet": writeParquet(t, 0, 40000, 2000)}, gcsfs.Options{DisablePrefetch: true})
	ctx := context.Background()
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{Columns: []string{"id"}, CoalesceGap: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the planning's requests to end", func() bool { return srv.HTTP.Stats().InFlight == 0 })
	srv.HTTP.ResetStats()
	it := ds.Iter(ctx)
	checkRows(t, collect(t, it), idRange(0, 40000), "id")
	st, sent := it.Stats(), srv.HTTP.Stats()
	if st.Ranges != 20 || sent.Bytes != st.FetchedBytes {
		t.Fatalf("counted %d bytes in %d ranges; the server sent %d bytes in %d requests", st.FetchedBytes, st.Ranges, sent.Bytes, sent.Requests)
	}
}
