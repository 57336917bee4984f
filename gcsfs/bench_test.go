package gcsfs_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// benchShape is the link of the sequential and random benchmarks: 20 ms to
// first byte and 50 MB/s per connection, 1 GB/s in all.
var benchShape = testserver.Shape{Latency: 20 * time.Millisecond, ConnBandwidth: 50 << 20, AggregateBandwidth: 1000 << 20}

type benchRig struct {
	h    *fakeHarness
	data []byte
	fs   *gcsfs.FS
	http *storage.Client
}

func newBenchRig(b *testing.B, size int, zonal bool, opts *gcsfs.Options) *benchRig {
	b.Helper()
	h := newFakeHarness(b, zonal)
	r := &benchRig{h: h, data: testkit.RandomBytes(size, 5)}
	if err := h.Put(context.Background(), "big", r.data); err != nil {
		b.Fatal(err)
	}
	if opts == nil {
		opts = &gcsfs.Options{}
	}
	var err error
	if r.fs, err = h.FS(context.Background(), opts); err != nil {
		b.Fatal(err)
	}
	if r.http, err = h.HTTPClient(context.Background()); err != nil {
		b.Fatal(err)
	}
	h.HTTP.SetShape(benchShape)
	if h.GRPC != nil {
		h.GRPC.SetShape(benchShape)
	}
	b.Cleanup(func() {
		r.fs.Close()
		r.http.Close()
	})
	return r
}

func (r *benchRig) serverBytes() int64 {
	n := r.h.HTTP.Stats().Bytes
	if r.h.GRPC != nil {
		n += r.h.GRPC.Stats().Bytes
	}
	return n
}

func (r *benchRig) resetServer() {
	r.h.HTTP.ResetStats()
	if r.h.GRPC != nil {
		r.h.GRPC.ResetStats()
	}
}

// reportFetched reports bytes the server sent per byte the reads used.
func (r *benchRig) reportFetched(b *testing.B, used int64) {
	b.ReportMetric(float64(r.serverBytes())/float64(used), "fetched/used")
}

const seqSize = 256 << 20

// BenchmarkSequential reads a 256 MiB object front to back with 1 MiB
// Read calls on the shaped link: one storage.Reader stream (the baseline),
// File.Read with prefetch off, and File.Read with prefetch on over the
// HTTP and MRD backends.
func BenchmarkSequential(b *testing.B) {
	b.Run("OneStream", func(b *testing.B) {
		r := newBenchRig(b, seqSize, false, nil)
		buf := make([]byte, 1<<20)
		b.SetBytes(seqSize)
		r.resetServer()
		for b.Loop() {
			rd, err := r.http.Bucket(fakeBucket).Object("big").NewReader(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := readAllInto(rd, buf); err != nil {
				b.Fatal(err)
			}
			rd.Close()
		}
		r.reportFetched(b, int64(b.N)*seqSize)
	})
	for _, c := range []struct {
		name     string
		zonal    bool
		disabled bool
	}{{"NoPrefetch", false, true}, {"PrefetchHTTP", false, false}, {"PrefetchMRD", true, false}} {
		b.Run(c.name, func(b *testing.B) {
			r := newBenchRig(b, seqSize, c.zonal, &gcsfs.Options{DisablePrefetch: c.disabled})
			buf := make([]byte, 1<<20)
			b.SetBytes(seqSize)
			b.ReportAllocs()
			r.resetServer()
			for b.Loop() {
				f, err := r.fs.OpenContext(context.Background(), "big")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := readAllInto(f, buf); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			r.reportFetched(b, int64(b.N)*seqSize)
		})
	}
}

// BenchmarkReadFile reads the whole object at once: ranges fetched in
// parallel into one buffer.
func BenchmarkReadFile(b *testing.B) {
	for _, zonal := range []bool{false, true} {
		name := map[bool]string{false: "HTTP", true: "MRD"}[zonal]
		b.Run(name, func(b *testing.B) {
			r := newBenchRig(b, 64<<20, zonal, nil)
			b.SetBytes(64 << 20)
			b.ReportAllocs()
			r.resetServer()
			for b.Loop() {
				got, err := r.fs.ReadFile("big")
				if err != nil || len(got) != len(r.data) {
					b.Fatal(err)
				}
			}
			r.reportFetched(b, int64(b.N)*64<<20)
		})
	}
}

// BenchmarkRandom4KiB does random 4 KiB ReadAt calls: one round trip each,
// no bytes beyond those asked for.
func BenchmarkRandom4KiB(b *testing.B) {
	for _, zonal := range []bool{false, true} {
		name := map[bool]string{false: "HTTP", true: "MRD"}[zonal]
		b.Run(name, func(b *testing.B) {
			r := newBenchRig(b, 64<<20, zonal, nil)
			f, err := r.fs.OpenContext(context.Background(), "big")
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(1, 1))
			buf := make([]byte, 4<<10)
			b.SetBytes(4 << 10)
			r.resetServer()
			for b.Loop() {
				off := rng.Int64N(int64(len(r.data) - len(buf)))
				if _, err := f.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
				if !bytes.Equal(buf, r.data[off:off+int64(len(buf))]) {
					b.Fatalf("ReadAt(%d) returned wrong bytes", off)
				}
			}
			r.reportFetched(b, int64(b.N)*4<<10)
		})
	}
}

// readAllInto reads r to EOF with Read calls of len(buf) bytes, as an
// application reading in 1 MiB pieces would (io.Copy would hand the reader
// io.Discard's 8 KiB buffer instead).
func readAllInto(r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
