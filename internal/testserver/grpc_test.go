package testserver

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"hash/crc32"
	"io"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/zonalread/zonalread/internal/testkit"
)

// grpcTestStore is a map-backed objectStore keeping every generation.
type grpcTestStore struct {
	mu   sync.Mutex
	objs map[[2]string][]storedObject // oldest first
	gen  int64
}

func (s *grpcTestStore) object(bucket, name string, generation int64) (storedObject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gens := s.objs[[2]string{bucket, name}]
	if len(gens) == 0 {
		return storedObject{}, errObjectNotFound
	}
	if generation == 0 {
		return gens[len(gens)-1], nil
	}
	for _, o := range gens {
		if o.Generation == generation {
			return o, nil
		}
	}
	return storedObject{}, errObjectNotFound
}

func (s *grpcTestStore) put(bucket, name string, data []byte) storedObject {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objs == nil {
		s.objs = map[[2]string][]storedObject{}
	}
	s.gen++
	o := storedObject{
		Bucket: bucket, Name: name, Generation: 1000 + s.gen, Metageneration: 1,
		ContentType: "application/octet-stream",
		Updated:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Data:        data,
	}
	k := [2]string{bucket, name}
	s.objs[k] = append(s.objs[k], o)
	return o
}

type grpcFixture struct {
	store  *grpcTestStore
	ep     *Endpoint
	g      *grpcServer
	client *storage.Client
	bkt    *storage.BucketHandle
	data   []byte // bucket "b", object "obj"
	ctx    context.Context
}

// newGRPCTestClient is a real gRPC storage client for addr.
func newGRPCTestClient(ctx context.Context, addr string) (*storage.Client, error) {
	return storage.NewGRPCClient(ctx,
		storage.WithGRPCBidiReads(),
		storage.WithDisabledClientMetrics(),
		option.WithEndpoint(addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithoutAuthentication(),
	)
}

func newGRPCFixture(t *testing.T, shape Shape) *grpcFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	f := &grpcFixture{store: &grpcTestStore{}, ep: newEndpoint(shape, 1), ctx: ctx}
	f.data = testkit.RandomBytes(3<<20+12345, 7)
	f.store.put("b", "obj", f.data)
	g, err := newGRPCServer(f.store, f.ep)
	if err != nil {
		t.Fatal(err)
	}
	f.g = g
	t.Cleanup(g.close) // runs after the client's Close
	c, err := newGRPCTestClient(ctx, g.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f.client = c
	f.bkt = c.Bucket("b")
	return f
}

type rangeResult struct {
	off, length int64 // as added
	buf         testkit.SyncBuffer
	gotOff, n   int64
	err         error
	done        chan struct{}
}

func addRange(mrd *storage.MultiRangeDownloader, off, length int64) *rangeResult {
	r := &rangeResult{off: off, length: length, done: make(chan struct{})}
	mrd.Add(&r.buf, off, length, func(o, n int64, err error) {
		r.gotOff, r.n, r.err = o, n, err
		close(r.done)
	})
	return r
}

// finished reports whether the callback has run.
func (r *rangeResult) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// want is what a successful read of r returns from data.
func (r *rangeResult) want(data []byte) []byte {
	size := int64(len(data))
	start := r.off
	if start < 0 {
		start = max(size+start, 0)
	}
	end := size
	if r.length > 0 {
		end = min(start+r.length, size)
	}
	return data[start:end]
}

func (r *rangeResult) check(t *testing.T, data []byte) {
	t.Helper()
	<-r.done
	if r.err != nil {
		t.Errorf("range (%d, %d): %v", r.off, r.length, r.err)
		return
	}
	want := r.want(data)
	if r.n != int64(len(want)) || !bytes.Equal(r.buf.Bytes(), want) {
		t.Errorf("range (%d, %d): got %d bytes (callback n=%d), want %d; equal=%v",
			r.off, r.length, r.buf.Len(), r.n, len(want), bytes.Equal(r.buf.Bytes(), want))
	}
}

func TestGRPCMultiRangeDownloader(t *testing.T) {
	f := newGRPCFixture(t, Shape{})
	size := int64(len(f.data))
	obj := f.bkt.Object("obj")
	mrd, err := obj.NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mrd.Attrs.Size != size || mrd.Attrs.Generation != 1001 || mrd.Attrs.CRC32C != crc32.Checksum(f.data, crc32cTable) {
		t.Errorf("MRD attrs = %+v", mrd.Attrs)
	}

	specs := [][2]int64{
		{0, 100},
		{1 << 20, 3 << 19},    // 1.5 MiB from 1 MiB: several messages
		{size - 10, 0},        // to the end
		{5, 0},                // almost everything
		{-1000, 0},            // the last 1000 bytes
		{-(size + 50), 10},    // clamps to 0
		{size - 100, 1 << 20}, // longer than what is left
		{size, 0},             // empty, at the end
		{12345, 1},
	}
	var (
		mu      sync.Mutex
		results []*rangeResult
		wg      sync.WaitGroup
	)
	for _, s := range specs { // concurrent Adds
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := addRange(mrd, s[0], s[1])
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	mrd.Wait()
	var wantBytes int64
	for _, r := range results {
		r.check(t, f.data)
		wantBytes += int64(len(r.want(f.data)))
	}
	h := mrd.GetHandle()
	if len(h) == 0 {
		t.Error("GetHandle returned no handle")
	}
	if err := mrd.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	s := f.ep.Stats()
	if s.Requests != int64(len(specs)) || s.Bytes != wantBytes || s.Streams != 1 || s.FaultsInjected() != 0 {
		t.Errorf("stats = %+v, want %d requests, %d bytes, 1 stream", s, len(specs), wantBytes)
	}
	testkit.WaitFor(t, "the stream to close", func() bool { return f.ep.Stats().ActiveStreams == 0 })

	// A new generation; the handle and an explicit generation still read
	// the old one.
	newData := testkit.RandomBytes(1000, 8)
	f.store.put("b", "obj", newData)
	mrd, err = obj.ReadHandle(h).NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mrd.Attrs.Size != 0 {
		t.Errorf("MRD opened with a handle has attrs %+v; the service sends no metadata then", mrd.Attrs)
	}
	r := addRange(mrd, 2<<20, 100)
	mrd.Wait()
	r.check(t, f.data)
	mrd.Close()

	mrd, err = obj.Generation(1001).NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r = addRange(mrd, -100, 0)
	mrd.Wait()
	r.check(t, f.data)
	mrd.Close()

	mrd, err = obj.NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mrd.Attrs.Size != 1000 || mrd.Attrs.Generation != 1002 {
		t.Errorf("live generation attrs = %+v", mrd.Attrs)
	}
	r = addRange(mrd, 0, 0)
	mrd.Wait()
	r.check(t, newData)
	mrd.Close()
}

func TestGRPCMultipleStreams(t *testing.T) {
	f := newGRPCFixture(t, Shape{})
	mrd, err := f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx, storage.WithMinConnections(3))
	if err != nil {
		t.Fatal(err)
	}
	var rs []*rangeResult
	for i := range 12 {
		rs = append(rs, addRange(mrd, int64(i)<<18, 1<<18))
	}
	mrd.Wait()
	for _, r := range rs {
		r.check(t, f.data)
	}
	mrd.Close()
	if s := f.ep.Stats(); s.Streams != 3 || s.MaxActiveStreams != 3 || s.Requests != 12 {
		t.Errorf("stats = %+v, want 3 streams, 12 requests", s)
	}
	testkit.WaitFor(t, "the streams to close", func() bool { return f.ep.Stats().ActiveStreams == 0 })
}

func TestGRPCRangeReader(t *testing.T) {
	// NewRangeReader uses BidiReadObject too with WithGRPCBidiReads.
	f := newGRPCFixture(t, Shape{})
	rd, err := f.bkt.Object("obj").NewRangeReader(f.ctx, 1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd)
	rd.Close()
	if err != nil || !bytes.Equal(got, f.data[1000:1000+1<<20]) {
		t.Errorf("ReadAll: %d bytes, %v", len(got), err)
	}
	if rd.Attrs.Size != int64(len(f.data)) {
		t.Errorf("reader attrs = %+v", rd.Attrs)
	}
}

func TestGRPCAttrs(t *testing.T) {
	f := newGRPCFixture(t, Shape{})
	attrs, err := f.bkt.Object("obj").Attrs(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(f.data)
	if attrs.Bucket != "b" || attrs.Name != "obj" || attrs.Size != int64(len(f.data)) ||
		attrs.Generation != 1001 || attrs.Metageneration != 1 ||
		attrs.ContentType != "application/octet-stream" ||
		attrs.CRC32C != crc32.Checksum(f.data, crc32cTable) || !bytes.Equal(attrs.MD5, sum[:]) ||
		!attrs.Updated.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("attrs = %+v", attrs)
	}
	if _, err := f.bkt.Object("obj").Generation(999).Attrs(f.ctx); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("missing generation: %v", err)
	}
	if _, err := f.bkt.Object("nope").Attrs(f.ctx); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("missing object: %v", err)
	}
	if _, err := f.bkt.Object("obj").If(storage.Conditions{GenerationMatch: 5}).Attrs(f.ctx); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("failed precondition: %v", err)
	}
	if s := f.ep.Stats(); s.MetadataRequests != 4 || s.Requests != 0 || s.Bytes != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestGRPCNotFound(t *testing.T) {
	f := newGRPCFixture(t, Shape{})
	for _, obj := range []*storage.ObjectHandle{f.bkt.Object("nope"), f.bkt.Object("obj").Generation(5), f.client.Bucket("nob").Object("obj")} {
		mrd, err := obj.NewMultiRangeDownloader(f.ctx)
		if status.Code(err) != codes.NotFound {
			t.Errorf("%s/%s: err = %v, want NotFound", obj.BucketName(), obj.ObjectName(), err)
		}
		if mrd != nil {
			mrd.Close()
		}
	}
}

func TestGRPCOutOfRange(t *testing.T) {
	f := newGRPCFixture(t, Shape{})
	mrd, err := f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := addRange(mrd, int64(len(f.data))+1, 10)
	mrd.Wait()
	<-r.done
	if status.Code(r.err) != codes.OutOfRange {
		t.Errorf("range past the end: %v, want OutOfRange", r.err)
	}
	if mrd.Error() == nil {
		t.Error("MRD has no permanent error after OutOfRange")
	}
	// Not tested: Add after the permanent error calls back with it, but
	// the client (v1.70.0) then races (callbackWg.Add after Wait in its
	// cleanup) and fails -race.
	mrd.Close()
	if s := f.ep.Stats(); s.Requests != 1 || s.Streams != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestGRPCShape(t *testing.T) {
	// Shaping only slows things down, so lower bounds on time are safe.
	const latency = 40 * time.Millisecond
	f := newGRPCFixture(t, Shape{Latency: latency})
	mrd, err := f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := addRange(mrd, 0, 1000)
	mrd.Wait()
	if d := time.Since(start); d < latency {
		t.Errorf("range took %v with latency %v", d, latency)
	}
	r.check(t, f.data)

	// 8 MiB/s per stream.
	const bw = 8 << 20
	f.ep.SetShape(Shape{ConnBandwidth: bw})
	mrd.Close()
	mrd, err = f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Interleaving: a small range added after a large one on the same
	// stream finishes first.
	start = time.Now()
	big := addRange(mrd, 0, 1<<20)
	small := addRange(mrd, 2<<20, 1000)
	<-small.done
	select {
	case <-big.done:
		t.Error("the large range finished before the small one added after it")
	default:
	}
	mrd.Wait()
	burst := newLimiter(bw).Burst()
	if d, min := time.Since(start), time.Duration(float64(1<<20+1000-burst)/bw*float64(time.Second)); d < min {
		t.Errorf("1 MiB at %d B/s took %v, want >= %v", bw, d, min)
	}
	big.check(t, f.data)
	small.check(t, f.data)
	mrd.Close()
	if s := f.ep.Stats(); s.Requests != 3 || s.Bytes != 1000+1<<20+1000 || s.Streams != 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestGRPCFaults(t *testing.T) {
	const after = 100 << 10
	cases := []struct {
		kind FaultKind
		// check inspects the range's outcome and the stats.
		check func(t *testing.T, f *grpcFixture, r *rangeResult, s Stats)
	}{
		{Fault503, func(t *testing.T, f *grpcFixture, r *rangeResult, s Stats) {
			r.check(t, f.data) // retried on a new stream
			if s.Streams != 2 || s.Requests != 2 || s.Bytes != r.length {
				t.Errorf("stats = %+v", s)
			}
		}},
		{FaultReset, func(t *testing.T, f *grpcFixture, r *rangeResult, s Stats) {
			r.check(t, f.data) // resumed on a new stream
			if s.Streams != 2 || s.Requests != 2 || s.Bytes != r.length {
				t.Errorf("stats = %+v", s)
			}
		}},
		{FaultShortBody, func(t *testing.T, f *grpcFixture, r *rangeResult, s Stats) {
			<-r.done
			// The client reports success with fewer bytes than asked for.
			if r.err != nil || r.n != after || !bytes.Equal(r.buf.Bytes(), f.data[r.off:r.off+after]) {
				t.Errorf("short body: n=%d err=%v, %d bytes", r.n, r.err, r.buf.Len())
			}
			if s.Streams != 1 || s.Requests != 1 || s.Bytes != after {
				t.Errorf("stats = %+v", s)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.kind.String(), func(t *testing.T) {
			f := newGRPCFixture(t, Shape{})
			f.ep.AddFault(Fault{Kind: c.kind, Object: "other", AfterBytes: 1}) // never matches
			f.ep.AddFault(Fault{Kind: c.kind, Object: "obj", AfterBytes: after, Times: 1})
			mrd, err := f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			r := addRange(mrd, 1000, 1<<20)
			mrd.Wait()
			<-r.done
			mrd.Close()
			s := f.ep.Stats()
			if s.Faults[c.kind] != 1 || s.FaultsInjected() != 1 {
				t.Errorf("faults = %v", s.Faults)
			}
			c.check(t, f, r, s)
		})
	}

	t.Run("stall", func(t *testing.T) {
		f := newGRPCFixture(t, Shape{})
		f.ep.AddFault(Fault{Kind: FaultStall, AfterBytes: after, Times: 1})
		mrd, err := f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		r := addRange(mrd, 1000, 1<<20)
		ok := addRange(mrd, 0, 10) // not stalled: the stream goes on
		<-ok.done
		ok.check(t, f.data)
		testkit.WaitFor(t, "the stalled range's bytes", func() bool { return r.buf.Len() == int(after) })
		select {
		case <-r.done:
			t.Fatal("stalled range completed")
		case <-time.After(20 * time.Millisecond):
		}
		mrd.Close()
		// The client (v1.70.0) never calls back ranges in flight on a
		// stream when the MRD is closed; it wrote the bytes it got.
		if r.finished() && r.err == nil {
			t.Error("stalled range succeeded")
		}
		if !bytes.Equal(r.buf.Bytes(), f.data[1000:1000+after]) {
			t.Errorf("stalled range wrote %d bytes, want the %d before the stall", r.buf.Len(), after)
		}
		if s := f.ep.Stats(); s.Faults[FaultStall] != 1 {
			t.Errorf("faults = %v", s.Faults)
		}
		testkit.WaitFor(t, "the stalled stream to end", func() bool { return f.ep.Stats().ActiveStreams == 0 })
	})

	t.Run("reset-whole-range", func(t *testing.T) {
		// AfterBytes beyond the range: the range completes, then the stream
		// fails; the other pending range is resumed on a new stream.
		f := newGRPCFixture(t, Shape{ConnBandwidth: 4 << 20})
		f.ep.AddFault(Fault{Kind: FaultReset, AfterBytes: 1 << 30, Times: 1})
		mrd, err := f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		r1 := addRange(mrd, 0, 100)
		r2 := addRange(mrd, 500, 1<<20)
		mrd.Wait()
		r1.check(t, f.data)
		r2.check(t, f.data)
		mrd.Close()
		if s := f.ep.Stats(); s.Faults[FaultReset] != 1 || s.Streams != 2 {
			t.Errorf("stats = %+v", s)
		}
	})
}

func TestGRPCCloseEndsStreams(t *testing.T) {
	f := newGRPCFixture(t, Shape{})
	f.ep.AddFault(Fault{Kind: FaultStall, AfterBytes: 10})
	mrd, err := f.bkt.Object("obj").NewMultiRangeDownloader(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := addRange(mrd, 0, 1000)
	// Wait for the client to hold the 10 bytes: the server counts them
	// before the transport delivers them, so its counter is not enough.
	testkit.WaitFor(t, "the stall", func() bool { return r.buf.Len() == 10 })
	f.g.close()
	f.g.close() // idempotent
	if s := f.ep.Stats(); s.ActiveStreams != 0 {
		t.Errorf("active streams after close: %d", s.ActiveStreams)
	}
	mrd.Close()
	if r.finished() && r.err == nil {
		t.Error("stalled range succeeded after the server closed")
	}
	if !bytes.Equal(r.buf.Bytes(), f.data[:10]) {
		t.Errorf("stalled range wrote %d bytes, want 10", r.buf.Len())
	}
}
