package gcsfs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
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

// A server that breaks every body: the storage client reopened a broken
// body on its own, at once and without limit, so a read sent thousands of
// requests until the stall timeout whatever Options.Retries said. Through
// Open's client (mrdpool.CheckingTransport) a random read and an open
// that fetches its first window now send one request per attempt:
// Retries -1 fails at the first broken body, and a few broken bodies are
// resumed, counted in Stats.Retries, with every byte right.
func TestBrokenBodiesResumedUnderRetries(t *testing.T) {
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{"emu"}, NoGRPC: true})
	srv.SetEmulatorEnv(t)
	data := testkit.RandomBytes(4<<20, 79)
	srv.Put(t, "obj", data)
	ctx := context.Background()
	open := func(retries int) *gcsfs.FS {
		fsys, err := gcsfs.Open(ctx, "gs://emu?zonal=false", &gcsfs.Options{Retries: retries})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fsys.Close() })
		return fsys
	}
	buf := make([]byte, 100000)

	fsys := open(-1)
	f, err := fsys.OpenContext(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, kind := range []testserver.FaultKind{testserver.FaultReset, testserver.FaultShortBody} {
		srv.HTTP.ClearFaults()
		srv.HTTP.AddFault(testserver.Fault{Kind: kind, AfterBytes: 1000})
		srv.HTTP.ResetStats()
		if _, err := f.ReadAt(buf, 5000); err == nil || errors.Is(err, gcsfs.ErrStalled) {
			t.Fatalf("%v: ReadAt with Retries -1 = %v, want the broken body's error", kind, err)
		}
		if st := srv.HTTP.Stats(); st.Requests != 1 {
			t.Fatalf("%v: %d requests for one read with Retries -1, want 1", kind, st.Requests)
		}
	}

	srv.HTTP.ClearFaults()
	srv.HTTP.AddFault(testserver.Fault{Kind: testserver.FaultReset, AfterBytes: 1000, Times: 3})
	srv.HTTP.ResetStats()
	fsys = open(5)
	f2, err := fsys.OpenContext(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if _, err := f2.ReadAt(buf, 5000); err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "a read resumed 3 times", buf, data[5000:5000+len(buf)])
	if st, fst := srv.HTTP.Stats(), f2.Stats(); st.Requests != 4 || fst.Retries != 3 {
		t.Fatalf("%d requests and %d retries for a read broken 3 times, want 4 and 3", st.Requests, fst.Retries)
	}

	// An open that fetches its first window with the stat (the FS read a
	// file from its start before): its broken parts are fetched again, not
	// reopened for ever.
	if _, err := fsys.ReadFile("obj"); err != nil {
		t.Fatal(err)
	}
	srv.HTTP.ClearFaults()
	srv.HTTP.AddFault(testserver.Fault{Kind: testserver.FaultReset, AfterBytes: 1000, Times: 2})
	srv.HTTP.ResetStats()
	f3, err := fsys.OpenContext(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer f3.Close()
	got, err := io.ReadAll(f3)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "a read whose first window broke twice", got, data)
	if st := srv.HTTP.Stats(); st.Requests > 64 {
		t.Fatalf("%d requests for a 4 MiB read whose first window broke twice", st.Requests)
	}
}
