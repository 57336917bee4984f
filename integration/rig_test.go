package integration

import (
	"context"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testserver"
)

const bucketName = "it"

// rig is a fake server with its clients, read through the HTTP range
// readers or (zonal) the gRPC multi-range downloaders.
type rig struct {
	*testserver.Test
	zonal bool
}

func newRig(t testing.TB, zonal bool) *rig {
	t.Helper()
	return &rig{Test: testserver.NewTest(t, &testserver.Options{Buckets: []string{bucketName}, Seed: 42}), zonal: zonal}
}

// ep is the endpoint data reads go through.
func (r *rig) ep() *testserver.Endpoint { return r.Endpoint(r.zonal) }

func (r *rig) setShape(s testserver.Shape) {
	r.HTTP.SetShape(s)
	r.GRPC.SetShape(s)
}

func (r *rig) fs(t testing.TB, opts *gcsfs.Options) *gcsfs.FS {
	t.Helper()
	var o gcsfs.Options
	if opts != nil {
		o = *opts
	}
	o.BucketName, o.Zonal = bucketName, gcsfs.ZonalOff
	if r.zonal {
		o.Zonal, o.GRPCClient = gcsfs.ZonalOn, r.GRPCStorage
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	f, err := gcsfs.New(context.Background(), r.Blob, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// open opens name through fsys; the file is closed at the end of t (a
// second Close, after a test's own, is harmless).
func open(t testing.TB, fsys *gcsfs.FS, name string) *gcsfs.File {
	t.Helper()
	file, err := fsys.OpenContext(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	return file
}

// forBoth runs fn against the HTTP range-reader path and the gRPC MRD path.
func forBoth(t *testing.T, fn func(t *testing.T, r *rig)) {
	for _, zonal := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP", true: "MRD"}[zonal], func(t *testing.T) {
			fn(t, newRig(t, zonal))
		})
	}
}

// faults returns how many faults of kind the endpoint has injected.
func faults(ep *testserver.Endpoint, kind testserver.FaultKind) int64 {
	return ep.Stats().Faults[kind]
}
