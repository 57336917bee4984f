package testserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/zonalread/zonalread/internal/testkit"
)

const testBucket = DefaultTestBucket

// fastRetry makes the storage client's retries quick, so tests with
// faults stay fast.
var fastRetry = storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2})

func httpClient(t *testing.T, s *Server) *storage.Client {
	t.Helper()
	c, err := s.HTTPClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.SetRetry(fastRetry)
	t.Cleanup(func() { c.Close() })
	return c
}

func readRange(ctx context.Context, obj *storage.ObjectHandle, off, n int64) ([]byte, error) {
	r, err := obj.NewRangeReader(ctx, off, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func readBlob(ctx context.Context, b *blob.Bucket, key string, off, n int64) ([]byte, error) {
	r, err := b.NewRangeReader(ctx, key, off, n, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestStartClose(t *testing.T) {
	start := time.Now()
	s, err := Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Start took %v", d)
	}
	if !strings.HasPrefix(s.HTTPURL(), "http://127.0.0.1:") {
		t.Errorf("HTTPURL = %q", s.HTTPURL())
	}
	if !strings.HasPrefix(s.GRPCAddr(), "127.0.0.1:") {
		t.Errorf("GRPCAddr = %q", s.GRPCAddr())
	}
	if s.HTTP == nil || s.GRPC == nil {
		t.Fatal("nil endpoint")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartNoGRPC(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true})
	if s.GRPC != nil || s.GRPCAddr() != "" {
		t.Errorf("GRPC = %v, GRPCAddr = %q", s.GRPC, s.GRPCAddr())
	}
	if _, err := s.GRPCClient(context.Background()); err == nil {
		t.Error("GRPCClient worked without gRPC")
	}
}

func TestRoundTrip(t *testing.T) {
	s := NewTest(t, nil)
	ctx := context.Background()
	data := testkit.RandomBytes(300<<10+17, 1)
	gen := s.Put(t, "dir/obj 1", data)

	c := httpClient(t, s.Server)
	obj := c.Bucket(testBucket).Object("dir/obj 1")
	got, err := readRange(ctx, obj, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "storage full read", got, data)

	b := s.Blob
	got, err = readBlob(ctx, b, "dir/obj 1", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "gocloud full read", got, data)

	attrs, err := obj.Attrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Generation != gen || attrs.Size != int64(len(data)) {
		t.Errorf("attrs: generation %d size %d, want %d %d", attrs.Generation, attrs.Size, gen, len(data))
	}

	// An object written through the client reads back through both.
	w := c.Bucket(testBucket).Object("written").NewWriter(ctx)
	w.Write(data[:1000])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err = readBlob(ctx, b, "written", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "written object", got, data[:1000])
	o, err := s.object(testBucket, "written", 0)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "written object in store", o.Data, data[:1000])
}

func TestRanges(t *testing.T) {
	s := NewTest(t, nil)
	ctx := context.Background()
	data := testkit.RandomBytes(200<<10, 2)
	s.Put(t, "obj", data)
	c := httpClient(t, s.Server)
	obj := c.Bucket(testBucket).Object("obj")
	b := s.Blob

	size := int64(len(data))
	for _, r := range []struct{ off, n int64 }{
		{0, 1}, {1, 100}, {65535, 65537}, {size - 10, 10}, {size - 10, -1},
		{100, -1}, {size - 5, 100}, {0, size}, {12345, 150000},
	} {
		end := size
		if r.n >= 0 {
			end = min(size, r.off+r.n)
		}
		want := data[r.off:end]
		got, err := readRange(ctx, obj, r.off, r.n)
		if err != nil {
			t.Errorf("storage range %d+%d: %v", r.off, r.n, err)
		} else {
			testkit.SameBytes(t, "storage range", got, want)
		}
		got, err = readBlob(ctx, b, "obj", r.off, r.n)
		if err != nil {
			t.Errorf("gocloud range %d+%d: %v", r.off, r.n, err)
		} else {
			testkit.SameBytes(t, "gocloud range", got, want)
		}
	}
	// A negative offset reads the tail.
	got, err := readRange(ctx, obj, -10, -1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "tail", got, data[size-10:])

	// An offset past the end fails.
	if _, err := readRange(ctx, obj, size+10, 5); err == nil {
		t.Error("read past the end worked")
	}
}

func TestGenerations(t *testing.T) {
	s := NewTest(t, nil)
	ctx := context.Background()
	v1 := testkit.RandomBytes(100<<10, 3)
	v2 := testkit.RandomBytes(90<<10, 4)
	g1 := s.Put(t, "obj", v1)
	g2 := s.Put(t, "obj", v2)
	if g2 <= g1 {
		t.Fatalf("generations %d then %d", g1, g2)
	}
	// Quick overwrites get distinct, growing generations.
	last := g2
	for range 20 {
		g := s.Put(t, "quick", v1[:10])
		if g <= last {
			t.Fatalf("generation %d after %d", g, last)
		}
		last = g
	}

	c := httpClient(t, s.Server)
	obj := c.Bucket(testBucket).Object("obj")
	got, err := readRange(ctx, obj, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "live", got, v2)
	got, err = readRange(ctx, obj.Generation(g2), 10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "generation 2", got, v2[10:1010])
	_, err = readRange(ctx, obj.Generation(g1), 10, 1000)
	if !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("read of overwritten generation: err = %v, want ErrObjectNotExist", err)
	}

	// gocloud reads of a generation go through BeforeRead.
	b := s.Blob
	_, err = b.NewRangeReader(ctx, "obj", 0, 10, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var oh **storage.ObjectHandle
		if as(&oh) {
			*oh = (*oh).Generation(g1)
		}
		return nil
	}})
	if gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("gocloud read of overwritten generation: err = %v, want NotFound", err)
	}

	// The store the gRPC fake uses sees the same generations.
	o, err := s.object(testBucket, "obj", 0)
	if err != nil || o.Generation != g2 || !bytes.Equal(o.Data, v2) {
		t.Errorf("store live: gen %d err %v", o.Generation, err)
	}
	if o, err = s.object(testBucket, "obj", g2); err != nil || o.Generation != g2 {
		t.Errorf("store g2: gen %d err %v", o.Generation, err)
	}
	if _, err := s.object(testBucket, "obj", g1); err != errObjectNotFound {
		t.Errorf("store g1: err %v", err)
	}
	if _, err := s.object("nobucket", "obj", 0); err != errObjectNotFound {
		t.Errorf("store missing bucket: err %v", err)
	}

	if err := s.DeleteObject(testBucket, "obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.object(testBucket, "obj", 0); err != errObjectNotFound {
		t.Errorf("store deleted: err %v", err)
	}
	if _, err := readRange(ctx, obj, 0, -1); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("read of deleted object: err = %v", err)
	}
	if err := s.DeleteObject(testBucket, "obj"); err == nil {
		t.Error("second delete worked")
	}
}

func TestGRPCClientSharesStore(t *testing.T) {
	s := NewTest(t, nil)
	ctx := context.Background()
	data := testkit.RandomBytes(150<<10, 5)
	s.Put(t, "obj", data)
	c, err := s.GRPCClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := readRange(ctx, c.Bucket(testBucket).Object("obj"), 1000, 100000)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "gRPC range", got, data[1000:101000])
	if st := s.GRPC.Stats(); st.Requests == 0 || st.Bytes < 100000 {
		t.Errorf("gRPC stats %+v", st)
	}
	if st := s.HTTP.Stats(); st.Requests != 0 {
		t.Errorf("HTTP stats %+v", st)
	}
}
