package mrdpool

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/zonalread/zonalread/internal/byterange"
)

// FuzzPoolReadAt reads ranges at any offset, those near MaxInt64 included
// (where off+n wraps negative): a range inside the object returns its
// bytes; any other fails with ErrRange before it reaches a downloader (the
// fake downloader panics on one). The seed corpus runs in `make test`.
func FuzzPoolReadAt(f *testing.F) {
	const M = math.MaxInt64
	for _, s := range []struct {
		off int64
		n   uint16
	}{{0, 0}, {0, 100}, {99, 1}, {100, 0}, {100, 1}, {-1, 1}, {M - 5, 10}, {M, 1}, {M - 99, 100}, {M, 0}, {math.MinInt64, 3}} {
		f.Add(s.off, s.n)
	}
	data := testData(100)
	b := &fakeBackend{data: data}
	p := New(b, nil)
	defer p.Close()
	f.Fuzz(func(t *testing.T, off int64, n uint16) {
		buf := make([]byte, n)
		adds := b.adds.Load()
		got, err := p.ReadAt(context.Background(), buf, off)
		if !byterange.Within(off, int64(n), int64(len(data))) {
			if !errors.Is(err, ErrRange) || got != 0 {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want ErrRange", n, off, got, err)
			}
			if b.adds.Load() != adds {
				t.Fatalf("an out-of-range read reached a downloader")
			}
			return
		}
		if err != nil || got != int(n) || string(buf) != string(data[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, got, err)
		}
	})
}

// A read whose context is already cancelled fetches nothing: no downloader
// is opened and no range is added.
func TestReadAtCancelledFetchesNothing(t *testing.T) {
	b := &fakeBackend{data: testData(100)}
	p := New(b, nil)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := p.ReadAt(ctx, make([]byte, 10), 0); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadAt(cancelled) = %d, %v", n, err)
	}
	if o, a := b.opens.Load(), b.adds.Load(); o != 0 || a != 0 {
		t.Fatalf("a cancelled read opened %d downloaders and added %d ranges", o, a)
	}
}
