package gcsfs_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// openReadRig is an FS over the HTTP fake holding objects a, b, c and d of
// 3 MiB each.
func openReadRig(t *testing.T) (*testserver.Test, *gcsfs.FS, map[string][]byte) {
	return openReadRigOn(t, false)
}

// openReadRigOn is openReadRig, on the gRPC fake as a zonal bucket when
// zonal is set.
func openReadRigOn(t *testing.T, zonal bool) (*testserver.Test, *gcsfs.FS, map[string][]byte) {
	t.Helper()
	// 20 ms before every response: requests sent together overlap.
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{fakeBucket}, NoGRPC: !zonal, Shape: testserver.Shape{Latency: 20 * time.Millisecond}})
	objs := map[string][]byte{}
	for i, name := range []string{"a", "b", "c", "d"} {
		objs[name] = testkit.RandomBytes(3<<20, uint64(60+i))
		srv.Put(t, name, objs[name])
	}
	opts := &gcsfs.Options{BucketName: fakeBucket, Zonal: gcsfs.ZonalOff}
	if zonal {
		opts = &gcsfs.Options{BucketName: fakeBucket, Zonal: gcsfs.ZonalOn, GRPCClient: srv.GRPCStorage}
	}
	fsys, err := gcsfs.New(context.Background(), srv.Blob, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return srv, fsys, objs
}

// On a zonal bucket too, after a file read from its start, the open and a
// first read at offset 0 cost one round trip: the first downloader's open
// (the stat), the other downloaders' opens and the one-shot reads of the
// first window's parts all go out at once (every stream the open made was
// open at the same time), and the object's bytes are sent once.
func TestZonalOpenAndFirstReadOneRoundTrip(t *testing.T) {
	srv, fsys, objs := openReadRigOn(t, true)
	readFromStart(t, fsys, "a", objs["a"])
	srv.GRPC.ResetStats()
	_, finish := openFirstRead(t, fsys, "b", objs["b"])
	if st := srv.GRPC.Stats(); st.Streams < 2 || st.MaxActiveStreams != st.Streams {
		t.Fatalf("open + first read: %d streams, at most %d at once; want them all at once", st.Streams, st.MaxActiveStreams)
	}
	finish()
	if st := srv.GRPC.Stats(); st.Bytes != int64(len(objs["b"])) {
		t.Fatalf("the server sent %d bytes for a %d-byte object", st.Bytes, len(objs["b"]))
	}
}

// A one-shot read of the first window whose data fails its checksum is
// never read from: the gRPC reader hands out a message's bytes before it
// checks them, so the window's parts become readable only once their read
// ended cleanly, and the bytes of the bad part are fetched again.
func TestZonalFirstWindowCorruptPartRefetched(t *testing.T) {
	srv, fsys, objs := openReadRigOn(t, true)
	readFromStart(t, fsys, "a", objs["a"])
	srv.GRPC.ResetStats()
	srv.GRPC.AddFault(testserver.Fault{Kind: testserver.FaultCorrupt, Object: "b", AfterBytes: 1000, Times: 1})
	b, err := fsys.Open("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if readAllSum(t, b) != sha256.Sum256(objs["b"]) {
		t.Fatal("b: bytes differ")
	}
	if n := srv.GRPC.Stats().Faults[testserver.FaultCorrupt]; n != 1 {
		t.Fatalf("%d corrupt chunks injected, want 1", n)
	}
}

// readFromStart reads name whole from its start, as a stream, and checks
// its bytes: after it, the FS's next opens fetch their first windows.
func readFromStart(t *testing.T, fsys *gcsfs.FS, name string, want []byte) {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if readAllSum(t, f) != sha256.Sum256(want) {
		t.Fatalf("%s: bytes differ", name)
	}
}

// openFirstRead opens name and reads its first 64 KiB; finish reads the
// rest and checks the whole against want.
func openFirstRead(t *testing.T, fsys *gcsfs.FS, name string, want []byte) (f *gcsfs.File, finish func()) {
	t.Helper()
	f, err := fsys.OpenContext(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	h := sha256.New()
	if _, err := io.CopyN(h, f, 64<<10); err != nil {
		t.Fatal(err)
	}
	return f, func() {
		t.Helper()
		if _, err := io.Copy(h, struct{ io.Reader }{f}); err != nil {
			t.Fatal(err)
		}
		if [32]byte(h.Sum(nil)) != sha256.Sum256(want) {
			t.Fatalf("%s: bytes differ", name)
		}
	}
}

// readAllSum reads f to the end in 64 KiB Reads and returns the sha256.
func readAllSum(t *testing.T, f fs.File) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// After a file read from its start, the next open and its first read at
// offset 0 cost one round trip together: the open sends its stat and the
// GETs of the first window's parts at once (they overlap at the server,
// whose latency holds each of them long enough to see it), and the first
// read is served from that window; the rest of the object is fetched once.
// The window holds the last file read (3 MiB: 4 MiB, in 4 parts of
// prefetch.DefaultMinPartSize), so one GET is past the end: a request, no
// bytes.
func TestOpenAndFirstReadOneRoundTrip(t *testing.T) {
	srv, fsys, objs := openReadRig(t)
	readFromStart(t, fsys, "a", objs["a"])
	srv.HTTP.ResetStats()
	b, finish := openFirstRead(t, fsys, "b", objs["b"])
	st := srv.HTTP.Stats()
	if st.MetadataRequests != 1 || st.Requests != 4 || st.MaxInFlight != 5 {
		t.Fatalf("open + first read: %d metadata and %d data requests, at most %d at once; want 1 and 4, together",
			st.MetadataRequests, st.Requests, st.MaxInFlight)
	}
	if b.Size() != int64(len(objs["b"])) || b.Generation() == 0 {
		t.Fatalf("size %d, generation %d", b.Size(), b.Generation())
	}
	finish()
	st = srv.HTTP.Stats()
	if st.Bytes != int64(len(objs["b"])) {
		t.Fatalf("the server sent %d bytes for a %d-byte object", st.Bytes, len(objs["b"]))
	}
	if got := b.Stats().Requests; got != st.Requests {
		t.Fatalf("File.Stats counts %d requests, the server saw %d", got, st.Requests)
	}

	// A missing object still fails at Open, with fs.ErrNotExist.
	if _, err := fsys.Open("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
}

// An open that GETs the window's parts before it knows the size reads
// objects smaller than the window, a part or empty right: the GETs past
// the end send no bytes and the reads see every byte once.
func TestOpenReadingSmallObjects(t *testing.T) {
	srv, fsys, objs := openReadRig(t)
	readFromStart(t, fsys, "a", objs["a"]) // the next opens GET their windows
	for _, size := range []int{0, 1, 100 << 10, 1<<20 + 1} {
		name := fmt.Sprintf("small-%d", size)
		objs[name] = testkit.RandomBytes(size, uint64(size))
		srv.Put(t, name, objs[name])
		srv.HTTP.ResetStats()
		f, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAllSum(t, f); got != sha256.Sum256(objs[name]) {
			t.Fatalf("%s: bytes differ", name)
		}
		f.Close()
		if st := srv.HTTP.Stats(); st.Bytes != int64(size) {
			t.Fatalf("%s: the server sent %d bytes for %d", name, st.Bytes, size)
		}
	}
}

// When files are read elsewhere first (a footer, a random read), or before
// any file was read, an open is a plain stat that fetches no data, and a
// random read fetches exactly its bytes.
func TestOpenAfterRandomReadsFetchesNothing(t *testing.T) {
	srv, fsys, objs := openReadRig(t)
	// A fresh FS knows nothing: its first open is a stat. Its file is
	// read first away from the start.
	a, err := fsys.OpenContext(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadAt(make([]byte, 4096), 1<<20); err != nil {
		t.Fatal(err)
	}
	a.Close()
	srv.HTTP.ResetStats()
	c, err := fsys.OpenContext(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := srv.HTTP.Stats(); st.MetadataRequests != 1 || st.Requests != 0 || st.Bytes != 0 {
		t.Fatalf("open after a random first read: %d metadata, %d data requests, %d bytes; want a stat only", st.MetadataRequests, st.Requests, st.Bytes)
	}
	p := make([]byte, 4096)
	if _, err := c.ReadAt(p, 2<<20+5); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(p) != sha256.Sum256(objs["c"][2<<20+5:2<<20+5+4096]) {
		t.Fatal("c: bytes differ")
	}
	if st := srv.HTTP.Stats(); st.Bytes != 4096 {
		t.Fatalf("a 4 KiB random read made the server send %d bytes", st.Bytes)
	}
}

// On a zonal bucket, opening an object large enough for a read to span
// Concurrency parts opens the pool's other streams in the background, so
// a vectored read after a footer read finds them open and opens none; a
// smaller object opens one stream, and reads open more as they need them.
func TestZonalOpenWarmsLargeObjects(t *testing.T) {
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{fakeBucket}})
	large, small := testkit.RandomBytes(3<<20, 70), testkit.RandomBytes(1<<20, 71)
	srv.Put(t, "large", large)
	srv.Put(t, "small", small)
	fsys, err := gcsfs.New(context.Background(), srv.Blob, &gcsfs.Options{BucketName: fakeBucket, Zonal: gcsfs.ZonalOn,
		GRPCClient: srv.GRPCStorage, Concurrency: 4, MinPartSize: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	ctx := context.Background()

	f, err := fsys.OpenContext(ctx, "large") // 3 MiB: 4 parts of >= 512 KiB
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	testkit.WaitFor(t, "the large object's 4 streams to open", func() bool { return f.Stats().Downloaders == 4 })
	tail := make([]byte, 8<<10)
	if _, err := f.ReadAtContext(ctx, tail, f.Size()-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	rs := []gcsfs.Range{{Offset: 0, Length: 1 << 20}, {Offset: 1 << 20, Length: 1 << 20}, {Offset: 2 << 20, Length: 1 << 20}}
	got, err := f.ReadRanges(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		testkit.SameBytes(t, fmt.Sprint("range ", i), got[i], large[r.Offset:r.Offset+r.Length])
	}
	if n := f.Stats().Downloaders; n != 4 {
		t.Fatalf("the reads opened %d streams beyond the 4 the open warmed", n-4)
	}

	s, err := fsys.OpenContext(ctx, "small") // 1 MiB: less than 4 parts
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.Stats().Downloaders; n != 1 {
		t.Fatalf("opening a small object opened %d streams, want 1", n)
	}
	if got := readAllSum(t, s); got != sha256.Sum256(small) {
		t.Fatal("small: bytes differ")
	}
}
