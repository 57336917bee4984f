package gcsfs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

const fakeBucket = "conformance"

// fakeHarness is a bucket on the in-process fake servers, read over HTTP
// range requests or (zonal) over gRPC multi-range downloaders.
type fakeHarness struct {
	*testserver.Test
	zonal bool
}

func newFakeHarness(t testing.TB, zonal bool) *fakeHarness {
	t.Helper()
	return &fakeHarness{Test: testserver.NewTest(t, &testserver.Options{Buckets: []string{fakeBucket}, NoGRPC: !zonal}), zonal: zonal}
}

func (h *fakeHarness) Put(_ context.Context, name string, data []byte) error {
	_, err := h.PutObject(fakeBucket, name, data)
	return err
}

func (h *fakeHarness) Delete(_ context.Context, name string) error {
	return h.DeleteObject(fakeBucket, name)
}

func (h *fakeHarness) FS(ctx context.Context, opts *gcsfs.Options) (*gcsfs.FS, error) {
	o := *opts
	o.BucketName = fakeBucket
	o.Zonal = gcsfs.ZonalOff
	if h.zonal {
		o.Zonal, o.GRPCClient = gcsfs.ZonalOn, h.GRPCStorage
	}
	return gcsfs.New(ctx, h.Blob, &o)
}

// Close does nothing: NewTest's Cleanup closes the server and clients.
func (h *fakeHarness) Close() {}

func TestConformanceHTTPFake(t *testing.T) {
	gcsfstest.RunConformanceTests(t, func(t *testing.T) gcsfstest.Harness { return newFakeHarness(t, false) })
}

func TestConformanceGRPCFake(t *testing.T) {
	gcsfstest.RunConformanceTests(t, func(t *testing.T) gcsfstest.Harness { return newFakeHarness(t, true) })
}

// Neither fake reports a zonal bucket: auto-detection asks and says no.
func TestZonalAutoDetect(t *testing.T) {
	h := newFakeHarness(t, false)
	f, err := gcsfs.New(context.Background(), h.Blob, &gcsfs.Options{BucketName: fakeBucket})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Zonal() {
		t.Fatal("fake bucket detected as zonal")
	}
	if h.HTTP.Stats().MetadataRequests == 0 {
		t.Fatal("auto-detection did not ask the server")
	}
}

// Counted at the server: random 4 KiB ReadAt calls fetch at most 2x the
// bytes they return (here exactly 1x: prefetch stays off), and a sequential
// 1 MiB Read loop fetches each byte once plus at most the last window.
func TestServerBytesPerByteUsed(t *testing.T) {
	for _, zonal := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP", true: "MRD"}[zonal], func(t *testing.T) {
			h := newFakeHarness(t, zonal)
			const size = 24 << 20
			data := testkit.RandomBytes(size, 8)
			h.Put(context.Background(), "obj", data)
			opts := &gcsfs.Options{MaxPrefetch: 8 << 20}
			f, err := h.FS(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sent := func() int64 {
				if zonal {
					return h.GRPC.Stats().Bytes
				}
				return h.HTTP.Stats().Bytes
			}

			file, err := f.OpenContext(context.Background(), "obj")
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, 7))
			buf := make([]byte, 4<<10)
			var used int64
			for range 300 {
				off := rng.Int64N(size - 4<<10)
				if _, err := file.ReadAt(buf, off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf, data[off:off+4<<10]) {
					t.Fatalf("ReadAt(%d) mismatch", off)
				}
				used += 4 << 10
			}
			file.Close()
			if got := sent(); got > 2*used || got < used {
				t.Fatalf("random 4KiB reads: server sent %d bytes for %d used", got, used)
			}

			before := sent()
			file, err = f.OpenContext(context.Background(), "obj")
			if err != nil {
				t.Fatal(err)
			}
			got, err := gcsfstest.ReadInChunks(file, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("sequential read mismatch")
			}
			st := file.Stats()
			file.Close()
			if n := sent() - before; n < size || n > size+opts.MaxPrefetch {
				t.Fatalf("sequential read: server sent %d bytes for %d", n, size)
			}
			if st.Served < size/2 {
				t.Fatalf("sequential read served only %d bytes from prefetch: %+v", st.Served, st)
			}
		})
	}
}

// The prefetch budget holds across files of one FS: many sequential
// readers at once never push the buffers past it.
func TestPrefetchBudgetHeldAcrossFiles(t *testing.T) {
	h := newFakeHarness(t, false)
	data := testkit.RandomBytes(8<<20, 9)
	h.Put(context.Background(), "obj", data)
	const budget = 3 << 20
	f, err := h.FS(context.Background(), &gcsfs.Options{MaxPrefetch: 2 << 20, BlockSize: 256 << 10, MinPartSize: 256 << 10, PrefetchBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			file, err := f.OpenContext(context.Background(), "obj")
			if err != nil {
				t.Error(err)
				return
			}
			defer file.Close()
			got, err := gcsfstest.ReadInChunks(file, 128<<10)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("read: %v", err)
			}
		})
	}
	wg.Wait()
	s := f.Stats()
	if s.BufferHigh > budget || s.BufferHigh == 0 || s.Prefetched == 0 {
		t.Fatalf("buffer high water %d, budget %d, prefetched %d", s.BufferHigh, budget, s.Prefetched)
	}
}

// Closing the FS while sequential readers have prefetches in flight cancels
// them: readers end with fs.ErrClosed (or finish), nothing leaks (goleak in
// TestMain), and the budget is all returned.
func TestCloseRacesPrefetch(t *testing.T) {
	for _, zonal := range []bool{false, true} {
		h := newFakeHarness(t, zonal)
		data := testkit.RandomBytes(16<<20, 10)
		h.Put(context.Background(), "obj", data)
		shape := testserver.Shape{Latency: 5 * time.Millisecond, ConnBandwidth: 20 << 20}
		h.HTTP.SetShape(shape)
		if zonal {
			h.GRPC.SetShape(shape)
		}
		f, err := h.FS(context.Background(), &gcsfs.Options{MaxPrefetch: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		started := make(chan struct{}, 4)
		for range 4 {
			wg.Go(func() {
				file, err := f.OpenContext(context.Background(), "obj")
				if err != nil {
					started <- struct{}{}
					return
				}
				buf := make([]byte, 256<<10)
				for i := 0; ; i++ {
					if i == 4 {
						started <- struct{}{}
					}
					_, err := file.Read(buf)
					if err != nil {
						if err != io.EOF && !errors.Is(err, fs.ErrClosed) {
							t.Errorf("read racing Close: %v", err)
						}
						if i < 4 {
							started <- struct{}{}
						}
						return
					}
				}
			})
		}
		for range 4 {
			<-started
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}
