package mrdpool

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/zonalread/zonalread/internal/byterange"
	"github.com/zonalread/zonalread/internal/testkit"
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
	data := testkit.RandomBytes(100, 1)
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
	b := &fakeBackend{data: testkit.RandomBytes(100, 1)}
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

// TestParseRangeHeader: the ranges CheckingTransport cuts a whole-object
// 200 down to, and the ones it leaves alone.
func TestParseRangeHeader(t *testing.T) {
	for _, c := range []struct {
		h          string
		size       int64
		start, end int64
		ok         bool
	}{
		{"bytes=0-99", 1000, 0, 99, true},
		{"bytes=10-", 1000, 10, 999, true},
		{"bytes=990-5000", 1000, 990, 999, true},
		{"bytes=-10", 1000, 990, 999, true},
		{"bytes=-5000", 1000, 0, 999, true},
		{"bytes=1000-", 1000, 0, 0, false},
		{"bytes=5-4", 1000, 0, 0, false},
		{"bytes=0-1,5-6", 1000, 0, 0, false},
		{"bytes=-0", 1000, 0, 0, false},
		{"bytes=0-9", 0, 0, 0, false},
		{"items=0-9", 1000, 0, 0, false},
		{"bytes=9223372036854775807-", 1000, 0, 0, false},
		{"bytes=99999999999999999999-", 1000, 0, 0, false},
	} {
		s, e, ok := parseRange(c.h, c.size)
		if ok != c.ok || (ok && (s != c.start || e != c.end)) {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", c.h, c.size, s, e, ok, c.start, c.end, c.ok)
		}
	}
}

// sizedBackend reports whatever size it is told, like a hostile server.
type sizedBackend struct{ fakeBackend }

func (b *sizedBackend) Open(ctx context.Context) (Downloader, ObjectInfo, error) {
	d, info, err := b.fakeBackend.Open(ctx)
	info.Size = -5
	return d, info, err
}

// A negative object size from the server fails the open with ErrRange
// instead of reaching the range checks (and prefetch.New, which panics).
func TestNegativeSizeRejected(t *testing.T) {
	b := &sizedBackend{fakeBackend{data: testkit.RandomBytes(100, 1)}}
	p := New(b, nil)
	defer p.Close()
	if _, err := p.Info(context.Background()); !errors.Is(err, ErrRange) {
		t.Fatalf("Info with a negative size = %v, want ErrRange", err)
	}
	if n, err := p.ReadAt(context.Background(), make([]byte, 1), 0); n != 0 || !errors.Is(err, ErrRange) {
		t.Fatalf("ReadAt with a negative size = %d, %v", n, err)
	}
}
