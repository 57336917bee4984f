package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"gocloud.dev/blob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testserver"
)

const bucketName = "it"

// rig is a fake server, a bucket over it, and (zonal) a gRPC client.
type rig struct {
	srv    *testserver.Server
	bucket *blob.Bucket
	grpc   *storage.Client
	zonal  bool
}

func newRig(t testing.TB, zonal bool) *rig {
	t.Helper()
	srv, err := testserver.Start(&testserver.Options{Buckets: []string{bucketName}, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{srv: srv, zonal: zonal}
	ctx := context.Background()
	if r.bucket, err = srv.OpenBucket(ctx, bucketName); err != nil {
		t.Fatal(err)
	}
	// The storage client retries 503s itself, starting at a 1 s backoff;
	// tests want the same behaviour, faster.
	var c *storage.Client
	if r.bucket.As(&c) {
		c.SetRetry(storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}))
	}
	if zonal {
		if r.grpc, err = srv.GRPCClient(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		r.bucket.Close()
		if r.grpc != nil {
			r.grpc.Close()
		}
		srv.Close()
	})
	return r
}

// ep is the endpoint data reads go through.
func (r *rig) ep() *testserver.Endpoint {
	if r.zonal {
		return r.srv.GRPC
	}
	return r.srv.HTTP
}

func (r *rig) setShape(s testserver.Shape) {
	r.srv.HTTP.SetShape(s)
	r.srv.GRPC.SetShape(s)
}

func (r *rig) put(t testing.TB, name string, data []byte) {
	t.Helper()
	if _, err := r.srv.PutObject(bucketName, name, data); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) fs(t testing.TB, opts *gcsfs.Options) *gcsfs.FS {
	t.Helper()
	var o gcsfs.Options
	if opts != nil {
		o = *opts
	}
	o.BucketName, o.Zonal = bucketName, gcsfs.ZonalOff
	if r.zonal {
		o.Zonal, o.GRPCClient = gcsfs.ZonalOn, r.grpc
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	f, err := gcsfs.New(context.Background(), r.bucket, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// forBoth runs fn against the HTTP range-reader path and the gRPC MRD path.
func forBoth(t *testing.T, fn func(t *testing.T, r *rig)) {
	for _, zonal := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP", true: "MRD"}[zonal], func(t *testing.T) {
			fn(t, newRig(t, zonal))
		})
	}
}

func data(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func same(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes sha256 %x, want %d bytes sha256 %x", what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// faults returns how many faults of kind the endpoint has injected.
func faults(ep *testserver.Endpoint, kind testserver.FaultKind) int64 {
	return ep.Stats().Faults[kind]
}
