package prefetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"testing"

	"github.com/zonalread/zonalread/directbuf"
	"github.com/zonalread/zonalread/internal/byterange"
)

// FuzzEngineRanges drives an engine with pairs of reads at any offset,
// those near MaxInt64 included, with a MaxPrefetch near MaxInt64 (so
// end+window overflows): ReadAt behaves like bytes.Reader.ReadAt, ReadDirect
// fails with fs.ErrInvalid exactly when its range is outside the object,
// and no fetch outside the object reaches the fetcher (memFetcher fails
// one). The seed corpus runs in `make test`.
func FuzzEngineRanges(f *testing.F) {
	const M = math.MaxInt64
	for _, s := range []struct {
		off1, off2 int64
		n          uint16
	}{{0, 100, 100}, {0, 1000, 1000}, {M - 5, 0, 10}, {M, M, 1}, {4000, 4095, 2}, {-1, 5, 1}, {0, M - 4000, 4000}, {4096, 4096, 0}} {
		f.Add(s.off1, s.off2, s.n)
	}
	f.Fuzz(func(t *testing.T, off1, off2 int64, n uint16) {
		m := newMem(4096)
		e := New(m, int64(len(m.data)), &Options{
			BlockSize: 64, MaxPrefetch: M - 3, MinPartSize: 32, Concurrency: 3,
			Buffers: directbuf.NewPool(1 << 20),
		})
		defer e.Close()
		ref := bytes.NewReader(m.data)
		ctx := context.Background()
		// Three reads in a row at off1 start a streak (and a prefetch of
		// a window near MaxInt64), then one at off2.
		for _, off := range []int64{off1, off1 + int64(n), off1 + 2*int64(n), off2} {
			got, want := make([]byte, n), make([]byte, n)
			gn, gerr := e.ReadAt(ctx, got, off)
			if off < 0 {
				if !errors.Is(gerr, fs.ErrInvalid) {
					t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want ErrInvalid", n, off, gn, gerr)
				}
				continue
			}
			wn, werr := ref.ReadAt(want, off)
			if n == 0 {
				wn, werr = 0, nil
			}
			if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) || (werr == io.EOF) != (gerr == io.EOF) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", n, off, gn, gerr, wn, werr)
			}
			derr := e.ReadDirect(ctx, got, off)
			if in := byterange.Within(off, int64(n), int64(len(m.data))); in != (derr == nil) || (!in && !errors.Is(derr, fs.ErrInvalid)) {
				t.Fatalf("ReadDirect(%d bytes at %d) = %v, in range %v", n, off, derr, in)
			}
			if derr == nil && !bytes.Equal(got, m.data[off:off+int64(n)]) {
				t.Fatalf("ReadDirect(%d bytes at %d) returned other bytes", n, off)
			}
		}
	})
}

// TestDetectorNearMaxInt64: a read ending past MaxInt64 and a window
// doubling past MaxInt64 never produce a negative or wrapped window, and a
// read at the wrapped "next" offset is not taken for a sequential one.
func TestDetectorNearMaxInt64(t *testing.T) {
	const M = math.MaxInt64
	d := newDetector(1, M, 1)
	for i := range 70 {
		dec := d.observe(int64(i), 1)
		if dec.window <= 0 || dec.window > M {
			t.Fatalf("read %d: window %d", i, dec.window)
		}
	}
	if w := d.observe(70, 1).window; w != M {
		t.Fatalf("window after 70 doublings = %d, want MaxInt64", w)
	}
	d = newDetector(1<<20, 64<<20, 3)
	d.observe(M-5, 10) // ends past MaxInt64
	start := int64(M - 5)
	wrapped := start + 10 // wraps negative, as off+n did
	if dec := d.observe(wrapped, 10); dec.sequential {
		t.Fatalf("a read at the wrapped end %d counted as sequential", wrapped)
	}
	d.observe(M-10, 10) // ends exactly at MaxInt64
	if dec := d.observe(M, 0); !dec.sequential {
		t.Fatal("a zero-length read at MaxInt64 after a read ending there is not sequential")
	}
}
