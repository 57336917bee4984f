package gcsfs_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
	"github.com/zonalread/zonalread/mrdpool"
)

// A gs:// FS that Open builds reads through mrdpool.CheckingTransport: a
// server answering ranged GETs with the whole object still yields the
// object's bytes (sequential reads, ReadAt at 0 and elsewhere, ReadFile),
// and one answering with another generation fails with ErrObjectChanged.
func TestOpenChecksHTTPResponses(t *testing.T) {
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{"emu"}, NoGRPC: true})
	srv.SetEmulatorEnv(t)
	data := testkit.RandomBytes(2<<20+5, 78)
	srv.Put(t, "obj", data)
	f, err := gcsfs.Open(context.Background(), "gs://emu?zonal=false", &gcsfs.Options{BlockSize: 64 << 10, MinPartSize: 64 << 10, MaxPrefetch: 256 << 10, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	srv.HTTP.AddFault(testserver.Fault{Kind: testserver.FaultIgnoreRange})
	got, err := f.ReadFile("obj")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFile from a server ignoring Range: %d bytes, %v", len(got), err)
	}
	file, err := f.OpenContext(context.Background(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	got, err = gcsfstest.ReadInChunks(file, 100<<10)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("sequential read from a server ignoring Range: %d bytes, %v", len(got), err)
	}
	buf := make([]byte, 1000)
	for _, off := range []int64{0, 12345} {
		if _, err := file.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+1000]) {
			t.Fatalf("ReadAt(%d) from a server ignoring Range: %v", off, err)
		}
	}
	if srv.HTTP.Stats().Faults[testserver.FaultIgnoreRange] == 0 {
		t.Fatal("no response ignored Range")
	}

	srv.HTTP.ClearFaults()
	srv.HTTP.AddFault(testserver.Fault{Kind: testserver.FaultWrongGeneration})
	// Far from the reads above, so no prefetched byte (of the pinned
	// generation) serves it: the read reaches the server.
	_, err = file.ReadAt(buf, int64(len(data))-5000)
	if !errors.Is(err, gcsfs.ErrObjectChanged) {
		t.Fatalf("ReadAt answered with another generation = %v, want ErrObjectChanged", err)
	}
	// gcsfs owns the error: its message names gcsfs, and the lower
	// package's sentinel still matches.
	if !errors.Is(err, mrdpool.ErrObjectChanged) || !strings.Contains(err.Error(), "gcsfs: object changed") || strings.Contains(err.Error(), "mrdpool: object changed") {
		t.Fatalf("ReadAt answered with another generation = %v, want gcsfs's message wrapping mrdpool.ErrObjectChanged too", err)
	}
	if _, err := f.ReadFile("obj"); !errors.Is(err, gcsfs.ErrObjectChanged) {
		t.Fatalf("ReadFile answered with another generation = %v, want ErrObjectChanged", err)
	}
}
