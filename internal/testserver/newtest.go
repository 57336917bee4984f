package testserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"gocloud.dev/blob"
)

// DefaultTestBucket is the bucket NewTest creates when Options.Buckets is
// empty.
const DefaultTestBucket = "test"

// Test is a Server started for one test, with clients on it. Its fields are
// set by NewTest and must not be changed.
type Test struct {
	*Server
	// Bucket is the first bucket of Options.Buckets (DefaultTestBucket
	// when there was none).
	Bucket string
	// Blob is a gocloud bucket on Bucket over the HTTP endpoint. Its
	// storage client retries after 1-10 ms instead of the client library's
	// 1 s first backoff, so a test injecting 503s runs in milliseconds.
	Blob *blob.Bucket
	// GRPCStorage is a storage client on the gRPC endpoint, the one zonal
	// (multi-range downloader) reads take; nil with Options.NoGRPC.
	GRPCStorage *storage.Client
}

// NewTest starts a Server with opts (nil: defaults; no Buckets: one bucket
// named DefaultTestBucket) and opens its clients. It fails t if any of that
// fails, and registers a Cleanup that closes the clients, then the server.
func NewTest(t testing.TB, opts *Options) *Test {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if len(o.Buckets) == 0 {
		o.Buckets = []string{DefaultTestBucket}
	}
	srv, err := Start(&o)
	if err != nil {
		t.Fatal(err)
	}
	x := &Test{Server: srv, Bucket: o.Buckets[0]}
	t.Cleanup(func() {
		if err := x.close(); err != nil {
			t.Errorf("testserver: Close: %v", err)
		}
	})
	ctx := context.Background()
	if x.Blob, err = srv.OpenBucket(ctx, x.Bucket); err != nil {
		t.Fatal(err)
	}
	var c *storage.Client
	if x.Blob.As(&c) {
		c.SetRetry(storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}))
	}
	if !o.NoGRPC {
		if x.GRPCStorage, err = srv.GRPCClient(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func (x *Test) close() error {
	if x.Blob != nil {
		x.Blob.Close()
	}
	if x.GRPCStorage != nil {
		x.GRPCStorage.Close()
	}
	return x.Server.Close()
}

// Put stores data as object name of Bucket and returns its generation; it
// fails t on error.
func (x *Test) Put(t testing.TB, name string, data []byte) int64 {
	t.Helper()
	gen, err := x.PutObject(x.Bucket, name, data)
	if err != nil {
		t.Fatal(err)
	}
	return gen
}

// Endpoint returns the endpoint the data of a zonal (gRPC) or HTTP read
// goes through.
func (x *Test) Endpoint(zonal bool) *Endpoint {
	if zonal {
		return x.GRPC
	}
	return x.HTTP
}

// SetEmulatorEnv points the storage client library at this server for the
// rest of the test (t.Setenv, so the test must not be parallel):
// STORAGE_EMULATOR_HOST at the HTTP endpoint and, unless Options.NoGRPC,
// STORAGE_EMULATOR_HOST_GRPC at the gRPC one. gs:// URLs opened by
// gcsfs.Open and gcscat then read from it.
func (x *Test) SetEmulatorEnv(t testing.TB) {
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(x.HTTPURL(), "http://"))
	if x.GRPC != nil {
		t.Setenv("STORAGE_EMULATOR_HOST_GRPC", x.GRPCAddr())
	}
}
