package mrdpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
	"github.com/zonalread/zonalread/mrdpool"
)

const bucketName = "pool-test"

// rig is one object on the fake servers and a way to make pools for it
// through either backend.
type rig struct {
	*testserver.Test
	data []byte
	name string
}

func newRig(t testing.TB, size int) *rig {
	t.Helper()
	r := &rig{Test: testserver.NewTest(t, &testserver.Options{Buckets: []string{bucketName}}), data: testkit.RandomBytes(size, 1), name: "obj"}
	r.Put(t, r.name, r.data)
	r.HTTP.ResetStats()
	r.GRPC.ResetStats()
	return r
}

// backend describes one of the two real backends for table tests.
type backend struct {
	name string
	make func(r *rig) mrdpool.Backend
	ep   func(r *rig) *testserver.Endpoint
	// opens counts downloader opens at the server: MRD streams, or (with no
	// known info) the attribute lookups of the range-reader backend.
	opens func(r *rig) int64
}

var backends = []backend{
	{
		name:  "MRD",
		make:  func(r *rig) mrdpool.Backend { return mrdpool.NewMRDBackend(r.GRPCStorage, bucketName, r.name, nil) },
		ep:    func(r *rig) *testserver.Endpoint { return r.GRPC },
		opens: func(r *rig) int64 { return r.GRPC.Stats().Streams },
	},
	{
		name:  "RangeReader",
		make:  func(r *rig) mrdpool.Backend { return mrdpool.NewBlobBackend(r.Blob, r.name, nil) },
		ep:    func(r *rig) *testserver.Endpoint { return r.HTTP },
		opens: func(r *rig) int64 { return r.HTTP.Stats().MetadataRequests },
	},
}

func forEachBackend(t *testing.T, fn func(t *testing.T, b backend, r *rig)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b, newRig(t, 4<<20+17)) })
	}
}

func checkRange(t *testing.T, r *rig, p *mrdpool.Pool, off, n int64) {
	t.Helper()
	buf := make([]byte, n)
	if _, err := p.ReadAt(context.Background(), buf, off); err != nil {
		t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
	}
	testkit.SameBytes(t, fmt.Sprintf("ReadAt(%d, %d)", off, n), buf, r.data[off:off+n])
}

func TestBackendLazyOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		p := mrdpool.New(b.make(r), nil)
		defer p.Close()
		if n := b.opens(r); n != 0 {
			t.Fatalf("New opened %d at the server", n)
		}
		checkRange(t, r, p, 100, 5000)
		if n := b.opens(r); n != 1 {
			t.Fatalf("first read opened %d, want 1", n)
		}
		info, _ := p.Info(context.Background())
		if info.Size != int64(len(r.data)) || info.Generation == 0 {
			t.Fatalf("info %+v", info)
		}
	})
}

func TestBackendConcurrentFirstCallersOpenOne(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		b.ep(r).SetShape(testserver.Shape{Latency: 20 * time.Millisecond})
		p := mrdpool.New(b.make(r), &mrdpool.Options{PoolSize: 8})
		defer p.Close()
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, err := p.Info(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := b.opens(r); n != 1 {
			t.Fatalf("16 concurrent first callers opened %d at the server, want 1", n)
		}
	})
	// Concurrent first Acquires (through ReadAt) on a pool of one: one
	// downloader, shared or waited for.
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		b.ep(r).SetShape(testserver.Shape{Latency: 20 * time.Millisecond})
		p := mrdpool.New(b.make(r), &mrdpool.Options{PoolSize: 1})
		defer p.Close()
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				off, buf := int64(i)*1000, make([]byte, 1000)
				if _, err := p.ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, r.data[off:off+1000]) {
					t.Errorf("ReadAt(%d): %v or wrong bytes", off, err)
				}
			})
		}
		wg.Wait()
		if n := b.opens(r); n != 1 {
			t.Fatalf("16 concurrent first reads opened %d at the server, want 1", n)
		}
	})
}

// concurrentReads runs n readers at once over distinct ranges and checks
// every byte.
func concurrentReads(t *testing.T, r *rig, p *mrdpool.Pool, n int) {
	var wg sync.WaitGroup
	part := int64(len(r.data) / n)
	for i := range n {
		wg.Go(func() {
			off := int64(i) * part
			buf := make([]byte, part)
			if _, err := p.ReadAt(context.Background(), buf, off); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(buf, r.data[off:off+part]) {
				t.Errorf("range %d differs", i)
			}
		})
	}
	wg.Wait()
}

func TestMRDGrowsToPoolSizeThenSharesRoundRobin(t *testing.T) {
	r := newRig(t, 4<<20)
	r.GRPC.SetShape(testserver.Shape{Latency: 30 * time.Millisecond})
	p := mrdpool.New(backends[0].make(r), &mrdpool.Options{PoolSize: 3})
	defer p.Close()
	concurrentReads(t, r, p, 12)
	s := r.GRPC.Stats()
	if s.Streams != 3 {
		t.Fatalf("%d streams at the server, want PoolSize 3", s.Streams)
	}
	if ps := p.Stats(); ps.Opened != 3 || ps.Shared == 0 {
		t.Fatalf("pool stats %+v: want 3 opened and shared acquires", ps)
	}
	// A second burst reuses the same streams.
	concurrentReads(t, r, p, 12)
	if s := r.GRPC.Stats(); s.Streams != 3 {
		t.Fatalf("second burst opened more streams: %d", s.Streams)
	}
}

func TestRangeReaderWaitsWhenFull(t *testing.T) {
	r := newRig(t, 4<<20)
	r.HTTP.SetShape(testserver.Shape{Latency: 20 * time.Millisecond})
	p := mrdpool.New(backends[1].make(r), &mrdpool.Options{PoolSize: 3})
	defer p.Close()
	concurrentReads(t, r, p, 12)
	s := r.HTTP.Stats()
	if s.MaxActiveStreams > 3 {
		t.Fatalf("%d concurrent connections at the server, PoolSize 3", s.MaxActiveStreams)
	}
	if s.Requests != 12 {
		t.Fatalf("%d data requests, want 12", s.Requests)
	}
	if ps := p.Stats(); ps.Waits == 0 || ps.Shared != 0 || ps.Opened != 3 {
		t.Fatalf("pool stats %+v: want waits, no sharing, 3 opened", ps)
	}
}

// A non-retryable stream error breaks a real MRD for good; the pool closes
// it, opens a new one and the read completes with the right bytes.
func TestMRDBrokenDownloaderReplaced(t *testing.T) {
	r := newRig(t, 4<<20)
	p := mrdpool.New(backends[0].make(r), &mrdpool.Options{PoolSize: 1, RetryBackoff: time.Millisecond})
	defer p.Close()
	checkRange(t, r, p, 0, 1000) // the first downloader is open and fine
	r.GRPC.AddFault(testserver.Fault{Kind: testserver.FaultFatal, AfterBytes: 300 << 10, Times: 1})
	checkRange(t, r, p, 1000, 2<<20)
	if f := r.GRPC.Stats().Faults[testserver.FaultFatal]; f != 1 {
		t.Fatalf("fatal faults injected: %d", f)
	}
	// The MRD turns permanently broken a moment after it fails the range,
	// so the first retry may still meet it (and fail at once): one or two
	// retries, one replacement.
	ps := p.Stats()
	if ps.Replaced != 1 || ps.Opened != 2 || ps.Retries < 1 || ps.Retries > 2 {
		t.Fatalf("pool stats %+v: want one downloader replaced and the range resumed", ps)
	}
	// Resumed, not restarted: the server sent the range about once.
	if b := r.GRPC.Stats().Bytes; b > 1000+2<<20+256<<10 {
		t.Fatalf("server sent %d bytes for a %d-byte range", b, 2<<20)
	}
}

// A chunk whose data does not match its CRC32C never reaches the caller:
// the MRD fails the range, and the attempt is fetched again.
func TestMRDCorruptChunkRefetched(t *testing.T) {
	r := newRig(t, 4<<20)
	p := mrdpool.New(backends[0].make(r), &mrdpool.Options{RetryBackoff: time.Millisecond})
	defer p.Close()
	r.GRPC.AddFault(testserver.Fault{Kind: testserver.FaultCorrupt, AfterBytes: 1 << 20, Times: 1})
	checkRange(t, r, p, 0, 3<<20)
	if f := r.GRPC.Stats().Faults[testserver.FaultCorrupt]; f != 1 {
		t.Fatalf("corrupt faults injected: %d", f)
	}
	if ps := p.Stats(); ps.Retries != 1 {
		t.Fatalf("pool stats %+v: want the corrupt attempt retried", ps)
	}
}

func TestBackendRangeRejectedBeforeServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		p := mrdpool.New(b.make(r), nil)
		defer p.Close()
		checkRange(t, r, p, 0, 10)
		before := b.ep(r).Stats().Requests
		size := int64(len(r.data))
		for _, c := range []struct{ off, n int64 }{{size - 5, 10}, {size + 1, 1}, {-1, 5}} {
			if _, err := p.ReadAt(context.Background(), make([]byte, c.n), c.off); !errors.Is(err, mrdpool.ErrRange) {
				t.Errorf("ReadAt(%d, %d) = %v, want ErrRange", c.off, c.n, err)
			}
		}
		if after := b.ep(r).Stats().Requests; after != before {
			t.Fatalf("out-of-range reads reached the server: %d requests", after-before)
		}
		// The downloader is still healthy.
		checkRange(t, r, p, size-10, 10)
	})
}

func TestBackendCloseIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		p := mrdpool.New(b.make(r), &mrdpool.Options{PoolSize: 2})
		concurrentReads(t, r, p, 4)
		if err := p.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if _, err := p.ReadAt(context.Background(), make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("ReadAt after Close = %v", err)
		}
		if b.name == "MRD" {
			// The server sees the streams end a moment after Close.
			deadline := time.Now().Add(5 * time.Second)
			for b.ep(r).Stats().ActiveStreams != 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if n := b.ep(r).Stats().ActiveStreams; n != 0 {
				t.Fatalf("%d streams still open 5s after Close", n)
			}
		}
	})
}

func TestBackendGenerationPinned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		p := mrdpool.New(b.make(r), &mrdpool.Options{PoolSize: 2})
		defer p.Close()
		checkRange(t, r, p, 0, 100)
		if _, err := r.PutObject(bucketName, r.name, []byte("new contents")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		_, err := p.ReadAt(context.Background(), buf, 5000)
		switch {
		case err == nil:
			// An open MRD stream keeps serving its generation.
			if !bytes.Equal(buf, r.data[5000:6000]) {
				t.Fatal("read after overwrite returned bytes of another generation")
			}
		case !errors.Is(err, mrdpool.ErrObjectChanged):
			t.Fatalf("read after overwrite = %v, want old bytes or ErrObjectChanged", err)
		}
	})
}

func TestBackendMissingObject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		r.name = "missing"
		p := mrdpool.New(b.make(r), nil)
		defer p.Close()
		if _, err := p.ReadAt(context.Background(), make([]byte, 1), 0); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("read of a missing object = %v, want ErrNotExist", err)
		}
	})
}

// BenchmarkPool reads a 64 MiB object in 8 parallel ranges through each
// backend on an unshaped loopback link: the cost of the pool and the
// backends themselves.
func BenchmarkPool(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			r := newRig(b, 64<<20)
			p := mrdpool.New(be.make(r), &mrdpool.Options{PoolSize: 8})
			defer p.Close()
			buf := make([]byte, len(r.data))
			read := func() {
				var wg sync.WaitGroup
				part := len(buf) / 8
				for i := range 8 {
					wg.Go(func() {
						if _, err := p.ReadAt(context.Background(), buf[i*part:(i+1)*part], int64(i*part)); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			read() // open the downloaders
			if !bytes.Equal(buf, r.data) {
				b.Fatal("mismatch")
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				read()
			}
			runtime.ReadMemStats(&after)
			if !bytes.Equal(buf, r.data) {
				b.Fatal("mismatch")
			}
			// Includes the in-process fake server's allocations.
			mib := float64(b.N) * float64(len(buf)) / (1 << 20)
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/mib, "allocs/MiB")
		})
	}
}

// A server that stops sending mid-range: the range fails with ErrStalled
// within the stall timeout on both backends, the stalled downloader is
// replaced, and once the server answers again the next read is whole.
func TestBackendStallReplacesDownloader(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		// Warm the client's connection with a pool that has no stall
		// bound (a first gRPC open takes over a second on a loaded
		// machine), then open the one downloader before the fault, so the
		// stall can only be the server's.
		warm := mrdpool.New(b.make(r), &mrdpool.Options{StallTimeout: -1})
		checkRange(t, r, warm, 0, 1)
		warm.Close()
		p := mrdpool.New(b.make(r), &mrdpool.Options{StallTimeout: time.Second, PoolSize: 1})
		defer p.Close()
		checkRange(t, r, p, 0, 1)
		b.ep(r).AddFault(testserver.Fault{Kind: testserver.FaultStall, AfterBytes: 64 << 10, Times: 1})
		_, err := p.ReadAt(context.Background(), make([]byte, 1<<20), 0)
		if !errors.Is(err, mrdpool.ErrStalled) {
			t.Fatalf("read of a stalled range: err = %v, want ErrStalled", err)
		}
		if s := p.Stats(); s.Replaced != 1 {
			t.Fatalf("stats %+v: want the stalled downloader replaced", s)
		}
		checkRange(t, r, p, 0, 1<<20)
	})
}

// ReadAtProgress reports a range's bytes as they land: as final on the
// range-reader backend (its bytes are final once written), each report a
// prefix that already holds the object's bytes; as not final on the MRD
// backend, which checks a checksum after writing, so its bytes are
// trusted only once the range ends, though their arrival is seen before.
func TestReadAtProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, r *rig) {
		p := mrdpool.New(b.make(r), nil)
		defer p.Close()
		const off = 17
		buf := make([]byte, 4<<20)
		var reports, partial int
		var last int64
		wantFinal := b.name != "MRD"
		_, err := p.ReadAtProgress(context.Background(), buf, off, func(k int64, final bool) {
			reports++
			if final != wantFinal {
				t.Errorf("progress %d reported final=%v on the %s backend", k, final, b.name)
			}
			if k <= last || k > int64(len(buf)) {
				t.Errorf("progress %d after %d", k, last)
				return
			}
			if k < int64(len(buf)) {
				partial++
			}
			if final && !bytes.Equal(buf[last:k], r.data[off+last:off+k]) {
				t.Errorf("progress %d: the reported bytes [%d, %d) differ from the object's", k, last, k)
			}
			last = k
		})
		if err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, "ReadAtProgress", buf, r.data[off:off+len(buf)])
		if partial == 0 {
			t.Fatalf("%d reports, none before the range completed", reports)
		}
	})
}
