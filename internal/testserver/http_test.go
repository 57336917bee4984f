package testserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/zonalread/zonalread/internal/testkit"
)

func TestClassify(t *testing.T) {
	h := &shaper{publicHost: "127.0.0.1:1234"}
	for _, c := range []struct {
		method, url string
		object      string
		media       bool
	}{
		{"GET", "http://127.0.0.1:1234/bkt/dir/obj%201", "dir/obj 1", true},
		{"HEAD", "http://127.0.0.1:1234/bkt/obj", "", false},
		{"GET", "http://localhost:1234/bkt/obj", "", false},
		{"GET", "http://127.0.0.1:1234/bkt", "", false},
		{"GET", "http://127.0.0.1:1234/bkt/", "", false},
		{"GET", "http://127.0.0.1:1234/storage/v1/b/bkt/o/dir%2Fobj?alt=media", "dir/obj", true},
		{"GET", "http://127.0.0.1:1234/storage/v1/b/bkt/o/dir%2Fobj?alt=json", "", false},
		{"GET", "http://127.0.0.1:1234/storage/v1/b/bkt/o/dir%2Fobj", "", false},
		{"GET", "http://127.0.0.1:1234/storage/v1/b/bkt/o?prefix=x", "", false},
		{"GET", "http://127.0.0.1:1234/download/storage/v1/b/bkt/o/a%2Fb?alt=media", "a/b", true},
		{"POST", "http://127.0.0.1:1234/upload/storage/v1/b/bkt/o?uploadType=multipart", "", false},
		{"GET", "http://127.0.0.1:1234/_internal/healthcheck", "", false},
	} {
		u, _ := url.Parse(c.url)
		r := &http.Request{Method: c.method, URL: u, Host: u.Host}
		object, media := h.classify(r)
		if object != c.object || media != c.media {
			t.Errorf("%s %s: got %q %v, want %q %v", c.method, c.url, object, media, c.object, c.media)
		}
	}
}

func TestHTTPCounters(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true})
	ctx := context.Background()
	data := testkit.RandomBytes(200<<10, 10)
	s.Put(t, "obj", data)
	c := httpClient(t, s.Server)
	obj := c.Bucket(testBucket).Object("obj")
	s.HTTP.ResetStats()

	for range 3 {
		got, err := readRange(ctx, obj, 1000, 100<<10)
		if err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, "range", got, data[1000:1000+100<<10])
	}
	if _, err := obj.Attrs(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.HTTP.Stats()
	if st.Requests != 3 || st.Bytes != 3*100<<10 || st.MetadataRequests != 1 {
		t.Errorf("stats %+v, want 3 requests, %d bytes, 1 metadata request", st, 3*100<<10)
	}
	// Sequential reads reuse one keep-alive connection.
	if st.Streams != 1 || st.ActiveStreams != 1 || st.MaxActiveStreams != 1 {
		t.Errorf("connections %+v, want 1", st)
	}

	// Readers open at once need a connection each.
	var rs []*storage.Reader
	for range 4 {
		r, err := obj.NewRangeReader(ctx, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	for _, r := range rs {
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, "concurrent", got, data)
	}
	st = s.HTTP.Stats()
	if st.MaxActiveStreams < 4 || st.Requests != 7 || st.Bytes != 3*100<<10+4*int64(len(data)) {
		t.Errorf("stats %+v", st)
	}
	if len(st.Faults) != 0 {
		t.Errorf("faults %v", st.Faults)
	}

	// A client that closes its connections leaves none open.
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); s.HTTP.Stats().ActiveStreams != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", s.HTTP.Stats().ActiveStreams)
		}
	}
}

// TestJSONReads checks the JSON API media path, which storage.WithJSONReads
// uses: shaped and counted like the XML path.
func TestJSONReads(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true})
	ctx := context.Background()
	data := testkit.RandomBytes(100<<10, 11)
	s.Put(t, "a/b", data)
	opts := append(s.httpClientOptions(), storage.WithJSONReads(),
		option.WithHTTPClient(&http.Client{Transport: s.newTransport()}))
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.HTTP.ResetStats()
	s.HTTP.AddFault(Fault{Kind: FaultShortBody, AfterBytes: 5000, Times: 1})
	got, err := readRange(ctx, c.Bucket(testBucket).Object("a/b"), 10, 50000)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "JSON read", got, data[10:50010])
	st := s.HTTP.Stats()
	if st.Requests != 2 || st.Bytes != 50000 || st.Faults[FaultShortBody] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHTTPShape(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true, Shape: Shape{Latency: time.Millisecond, ConnBandwidth: 50 << 20, AggregateBandwidth: 80 << 20}})
	ctx := context.Background()
	data := testkit.RandomBytes(300<<10, 12)
	s.Put(t, "obj", data)
	c := httpClient(t, s.Server)
	b := s.Blob
	s.HTTP.ResetStats()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			var got []byte
			var err error
			if i%2 == 0 {
				got, err = readRange(ctx, c.Bucket(testBucket).Object("obj"), int64(i), -1)
			} else {
				got, err = readBlob(ctx, b, "obj", int64(i), -1)
			}
			if err == nil && !bytes.Equal(got, data[i:]) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := s.HTTP.Stats()
	var want int64
	for i := range 8 {
		want += int64(len(data) - i)
	}
	if st.Requests != 8 || st.Bytes != want || st.Streams < 2 {
		t.Errorf("stats %+v, want 8 requests, %d bytes", st, want)
	}

	// A new shape applies to the next responses, on old connections too.
	s.HTTP.SetShape(Shape{})
	got, err := readRange(ctx, c.Bucket(testBucket).Object("obj"), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SameBytes(t, "after SetShape", got, data)
}

// readChecked reads obj[off:off+n] and fails t if the bytes it returns
// differ from data, whether or not the read failed.
func readChecked(t *testing.T, ctx context.Context, obj *storage.ObjectHandle, data []byte, off, n int64) error {
	t.Helper()
	r, err := obj.NewRangeReader(ctx, off, n)
	if err != nil {
		return err
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	want := data[off:min(int64(len(data)), off+n)]
	if err == nil && !bytes.Equal(got, want) || !bytes.HasPrefix(want, got) {
		t.Errorf("read %d+%d: got %d wrong bytes (err %v)", off, n, len(got), err)
	}
	return err
}

func TestHTTPFaults(t *testing.T) {
	const size = 256 << 10
	data := testkit.RandomBytes(size, 13)
	for _, tc := range []struct {
		name  string
		fault Fault
	}{
		{"503", Fault{Kind: Fault503, Times: 2}},
		{"reset", Fault{Kind: FaultReset, AfterBytes: 70000, Times: 2}},
		{"reset at 0", Fault{Kind: FaultReset, Times: 1}},
		{"short", Fault{Kind: FaultShortBody, AfterBytes: 100, Times: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewTest(t, &Options{NoGRPC: true})
			s.Put(t, "obj", data)
			s.Put(t, "other", data)
			ctx := context.Background()
			c := httpClient(t, s.Server)
			b := s.Blob

			// Through storage: the client retries (503) or resumes after
			// the bytes it has (reset, short body).
			f := tc.fault
			f.Object = "obj"
			s.HTTP.AddFault(f)
			if err := readChecked(t, ctx, c.Bucket(testBucket).Object("other"), data, 0, size); err != nil {
				t.Errorf("read of an object without faults: %v", err)
			}
			if err := readChecked(t, ctx, c.Bucket(testBucket).Object("obj"), data, 1, size); err != nil {
				t.Errorf("storage read: %v", err)
			}
			st := s.HTTP.Stats()
			if st.Faults[f.Kind] != int64(f.Times) {
				t.Errorf("faults %v, want %d", st.Faults, f.Times)
			}
			if st.Requests != 2+int64(f.Times) {
				t.Errorf("requests %d, want %d", st.Requests, 2+f.Times)
			}

			// Through gocloud: the same storage client underneath.
			s.HTTP.ResetStats()
			s.HTTP.AddFault(f)
			got, err := readBlob(ctx, b, "obj", 100, 200000)
			if err != nil {
				t.Errorf("gocloud read: %v", err)
			} else {
				testkit.SameBytes(t, "gocloud read", got, data[100:200100])
			}
			if n := s.HTTP.Stats().FaultsInjected(); n != int64(f.Times) {
				t.Errorf("gocloud: %d faults", n)
			}
		})
	}
}

func TestHTTP503NoRetry(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true})
	data := testkit.RandomBytes(1000, 14)
	s.Put(t, "obj", data)
	c := httpClient(t, s.Server)
	s.HTTP.AddFault(Fault{Kind: Fault503, Times: 1})
	obj := c.Bucket(testBucket).Object("obj").Retryer(storage.WithPolicy(storage.RetryNever))
	_, err := readRange(context.Background(), obj, 0, -1)
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) || gerr.Code != http.StatusServiceUnavailable {
		t.Errorf("err = %v, want a 503 googleapi.Error", err)
	}
	if got, err := readRange(context.Background(), obj, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read after the fault: %v", err)
	}
}

func TestHTTPStall(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true})
	data := testkit.RandomBytes(200<<10, 15)
	s.Put(t, "obj", data)
	c := httpClient(t, s.Server)
	b := s.Blob
	s.HTTP.AddFault(Fault{Kind: FaultStall, AfterBytes: 1000})

	// The storage client has no stall timeout of its own (unless
	// configured): the caller's context ends the read.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := readChecked(t, ctx, c.Bucket(testBucket).Object("obj"), data, 0, 100000)
	if err == nil {
		t.Error("stalled read succeeded")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := readBlob(ctx2, b, "obj", 0, 100000); err == nil {
		t.Error("stalled gocloud read succeeded")
	}
	if n := s.HTTP.Stats().Faults[FaultStall]; n < 2 {
		t.Errorf("%d stalls", n)
	}

	// A stall in progress does not hold up Close.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel3()
	r, err := c.Bucket(testBucket).Object("obj").Retryer(storage.WithMaxAttempts(2)).NewRangeReader(ctx3, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The reader resumes against a closed server: it fails.
	if _, err := io.ReadAll(r); err == nil {
		t.Error("read from a closed server succeeded")
	}
}

// TestHTTPRandomFaults reads many ranges with a mix of probabilistic faults:
// every read returns the right bytes or an error, never wrong bytes.
func TestHTTPRandomFaults(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true, Seed: 42})
	data := testkit.RandomBytes(300<<10, 16)
	s.Put(t, "obj", data)
	c := httpClient(t, s.Server)
	for _, f := range []Fault{
		{Kind: Fault503, Probability: 0.2},
		{Kind: FaultReset, AfterBytes: 5000, Probability: 0.2},
		{Kind: FaultShortBody, AfterBytes: 20000, Probability: 0.2},
	} {
		s.HTTP.AddFault(f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			off := int64(i * 7000)
			readChecked(t, ctx, c.Bucket(testBucket).Object("obj"), data, off, 60000)
		})
	}
	wg.Wait()
	st := s.HTTP.Stats()
	if st.FaultsInjected() == 0 || st.Faults[Fault503] == 0 || st.Faults[FaultReset] == 0 || st.Faults[FaultShortBody] == 0 {
		t.Errorf("faults %v", st.Faults)
	}
}

// TestHTTPFaultNotOnErrors checks that error responses draw no faults.
func TestHTTPFaultNotOnErrors(t *testing.T) {
	s := NewTest(t, &Options{NoGRPC: true})
	c := httpClient(t, s.Server)
	s.HTTP.AddFault(Fault{Kind: Fault503, Times: 1})
	if _, err := readRange(context.Background(), c.Bucket(testBucket).Object("missing"), 0, -1); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("err = %v", err)
	}
	if st := s.HTTP.Stats(); st.FaultsInjected() != 0 || st.Requests != 1 {
		t.Errorf("stats %+v", st)
	}
}
