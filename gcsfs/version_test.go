package gcsfs_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
)

// On GCS over HTTP, OpenVersion of a listed version sends no request: a
// read of the file's tail is the first (and only) round trip, and it reads
// the listed generation. After an overwrite the same open fails at its
// first read with ErrObjectChanged, having sent no metadata request.
func TestOpenVersionSendsNoRequest(t *testing.T) {
	srv, fsys, objs := openReadRig(t)
	entries, err := fsys.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]gcsfs.Version{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := gcsfs.VersionOf(info); ok {
			versions[e.Name()] = v
		}
	}
	v := versions["b"]
	if v.Generation == 0 || v.Size != int64(len(objs["b"])) {
		t.Fatalf("the listing's version of b: %+v", v)
	}
	srv.HTTP.ResetStats()
	file, err := fsys.OpenVersion(context.Background(), "b", v)
	if err != nil {
		t.Fatal(err)
	}
	if st := srv.HTTP.Stats(); st.MetadataRequests != 0 || st.Requests != 0 {
		t.Fatalf("OpenVersion sent %d metadata and %d data requests, want none", st.MetadataRequests, st.Requests)
	}
	tail := make([]byte, 64<<10)
	off := file.Size() - int64(len(tail))
	if _, err := file.ReadAtContext(context.Background(), tail, off); err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "tail", tail, objs["b"][off:])
	if st := srv.HTTP.Stats(); st.MetadataRequests != 0 || st.Requests != 1 {
		t.Fatalf("OpenVersion and a read sent %d metadata and %d data requests, want 0 and 1", st.MetadataRequests, st.Requests)
	}
	if file.Generation() != v.Generation {
		t.Fatalf("generation %d, want %d", file.Generation(), v.Generation)
	}
	file.Close()

	srv.Put(t, "b", testkit.RandomBytes(len(objs["b"]), 99)) // same size, new generation
	srv.HTTP.ResetStats()
	file, err = fsys.OpenVersion(context.Background(), "b", v)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.ReadAtContext(context.Background(), tail, off); !errors.Is(err, gcsfs.ErrObjectChanged) {
		t.Fatalf("read of an overwritten version = %v, want ErrObjectChanged", err)
	}
	if st := srv.HTTP.Stats(); st.MetadataRequests != 0 {
		t.Fatalf("%d metadata requests", st.MetadataRequests)
	}
}

// On a zonal bucket too, OpenVersion sends nothing: no stream opens until
// the first read, which opens one (no warming ahead of reads, so a
// footer read costs one stream), reads the listed generation, and after
// an overwrite fails with ErrObjectChanged or still reads that generation.
func TestZonalOpenVersionSendsNoRequest(t *testing.T) {
	srv, fsys, objs := openReadRigOn(t, true)
	st, err := fsys.Stat("b")
	if err != nil {
		t.Fatal(err)
	}
	v, ok := gcsfs.VersionOf(st)
	if !ok || v.Generation == 0 {
		t.Fatalf("version of b: %+v", v)
	}
	srv.GRPC.ResetStats()
	file, err := fsys.OpenVersion(context.Background(), "b", v)
	if err != nil {
		t.Fatal(err)
	}
	if st := srv.GRPC.Stats(); st.Streams != 0 || st.Requests != 0 || st.MetadataRequests != 0 {
		t.Fatalf("OpenVersion opened %d streams and sent %d data and %d metadata requests, want none", st.Streams, st.Requests, st.MetadataRequests)
	}
	tail := make([]byte, 64<<10)
	off := file.Size() - int64(len(tail))
	if _, err := file.ReadAtContext(context.Background(), tail, off); err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "tail", tail, objs["b"][off:])
	if st := srv.GRPC.Stats(); st.Streams != 1 {
		t.Fatalf("a read after OpenVersion opened %d streams, want 1", st.Streams)
	}
	file.Close()

	srv.Put(t, "b", testkit.RandomBytes(len(objs["b"]), 98))
	file, err = fsys.OpenVersion(context.Background(), "b", v)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	_, err = file.ReadAtContext(context.Background(), tail, off)
	switch {
	case err == nil:
		testkit.SameBytes(t, "tail of the pinned generation", tail, objs["b"][off:])
	case !errors.Is(err, gcsfs.ErrObjectChanged):
		t.Fatalf("read of an overwritten version = %v, want ErrObjectChanged or the old bytes", err)
	}
}

// A version with the object's generation but another size (a caller's
// mistake, or a hostile plan) never cuts a read short or reads past the
// object's end: the first read fails with ErrObjectChanged, on HTTP and on
// a zonal bucket, for a size too small, too large and near MaxInt64.
func TestOpenVersionWrongSize(t *testing.T) {
	for _, zonal := range []bool{false, true} {
		_, fsys, objs := openReadRigOn(t, zonal)
		st, err := fsys.Stat("c")
		if err != nil {
			t.Fatal(err)
		}
		v, _ := gcsfs.VersionOf(st)
		for _, size := range []int64{v.Size - 1, v.Size + 1, math.MaxInt64} {
			w := v
			w.Size = size
			file, err := fsys.OpenVersion(context.Background(), "c", w)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			_, err = file.ReadAtContext(context.Background(), buf, 0)
			file.Close()
			if !errors.Is(err, gcsfs.ErrObjectChanged) {
				t.Fatalf("zonal %v: read of a %d-byte version of a %d-byte object = %v, want ErrObjectChanged", zonal, size, len(objs["c"]), err)
			}
		}
	}
}
