package gcsfs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/api/option"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testserver"
)

// An FS that dials its own gRPC client spreads its downloaders' streams
// over several connections (a pool of PoolSize channels), not the storage
// package's single one; a ClientOptions pool of 1 still wins, which shows
// the server's connection counter tells them apart.
func TestZonalStreamsSpreadOverConnections(t *testing.T) {
	for _, c := range []struct {
		name   string
		extra  []option.ClientOption
		spread bool
	}{
		{"pool-from-PoolSize", nil, true},
		{"one-channel-by-option", []option.ClientOption{option.WithGRPCConnectionPool(1)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Latency keeps each range in flight long enough that the
			// parallel parts of one read need a downloader each.
			srv, err := testserver.Start(&testserver.Options{Buckets: []string{fakeBucket}, Shape: testserver.Shape{Latency: 20 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			data := make([]byte, 8<<20)
			rand.NewChaCha8([32]byte{4}).Read(data)
			if _, err := srv.PutObject(fakeBucket, "obj", data); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			bucket, err := srv.OpenBucket(ctx, fakeBucket)
			if err != nil {
				t.Fatal(err)
			}
			defer bucket.Close()
			fsys, err := gcsfs.New(ctx, bucket, &gcsfs.Options{
				Zonal: gcsfs.ZonalOn, BucketName: fakeBucket, PoolSize: 8, Concurrency: 8, MinPartSize: 1 << 20,
				ClientOptions: append(srv.GRPCClientOptions(), c.extra...),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			got, err := fsys.ReadFile("obj")
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(data) || !bytes.Equal(got, data) {
				t.Fatal("bytes differ from the object's")
			}
			st, fst := srv.GRPC.Stats(), fsys.Stats()
			t.Logf("downloaders %d, streams %d, connections %d", fst.Downloaders, st.Streams, st.Connections)
			if fst.Downloaders < 2 || st.Streams < 2 {
				t.Fatalf("the read opened %d downloaders (%d streams): the test needs several", fst.Downloaders, st.Streams)
			}
			if c.spread && st.Connections < 2 {
				t.Fatalf("%d streams all came on %d connection(s)", st.Streams, st.Connections)
			}
			if !c.spread && st.Connections != 1 {
				t.Fatalf("a one-channel client came on %d connections", st.Connections)
			}
		})
	}
}
