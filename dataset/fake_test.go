package dataset

import (
	"context"
	"slices"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testserver"
)

// End to end over the fake servers: Parquet written with arrow-go, read
// back through gcsfs over HTTP range readers and over gRPC multi-range
// downloaders, every row compared, in order and split equally.
func TestOverFakeServers(t *testing.T) {
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{"pq"}})
	for name, data := range threeFiles(t) {
		srv.Put(t, name, data)
	}
	ctx := context.Background()
	for _, zonal := range []bool{false, true} {
		opts := &gcsfs.Options{BucketName: "pq", Zonal: gcsfs.ZonalOff}
		if zonal {
			opts.Zonal, opts.GRPCClient = gcsfs.ZonalOn, srv.GRPCStorage
		}
		fsys, err := gcsfs.New(ctx, srv.Blob, opts)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true, TargetBlockBytes: 1, Columns: []string{"x", "id"}})
		if err != nil {
			t.Fatal(err)
		}
		it := ds.Iter(ctx)
		checkRows(t, collect(t, it), idRange(0, 30000), "x,id")
		if s := it.Stats(); s.Ranges != 30 || s.Fallbacks != 0 {
			t.Fatalf("zonal=%v: %d ranged reads for 30 row groups (fallbacks %d)", zonal, s.Ranges, s.Fallbacks)
		}
		splits := ds.StreamingSplit(2, true)
		got := make([][]int64, 2)
		done := make(chan struct{})
		for i, s := range splits {
			go func() {
				defer func() { done <- struct{}{} }()
				got[i], _ = consume(t, s, &BatchOptions{BatchSize: 1000}, false, 0)
			}()
		}
		<-done
		<-done
		if len(got[0]) != 15000 || len(got[1]) != 15000 {
			t.Fatalf("zonal=%v: split rows %d, %d", zonal, len(got[0]), len(got[1]))
		}
		all := slices.Concat(got...)
		slices.Sort(all)
		if !slices.Equal(all, idRange(0, 30000)) {
			t.Fatalf("zonal=%v: splits did not cover every row once", zonal)
		}
		fsys.Close()
	}
}
