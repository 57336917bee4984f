package dataset

import (
	"context"
	"errors"
	"testing"

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
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{"pq"}, NoGRPC: true})
	srv.Put(t, "big/part-0.parquet", writeParquet(t, 0, 40000, 1000))
	ctx := context.Background()
	const poolSize, workers = 1, 4
	fsys, err := gcsfs.New(ctx, srv.Blob, &gcsfs.Options{BucketName: "pq", Zonal: gcsfs.ZonalOff, PoolSize: poolSize, Concurrency: poolSize})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
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
