package prefetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/testkit"
)

// bytesBody is a response body over data that, after its bytes, ends with
// end (io.EOF for a clean end).
type bytesBody struct {
	r      *bytes.Reader
	end    error
	closed atomic.Bool
}

func newBody(data []byte, end error) *bytesBody {
	return &bytesBody{r: bytes.NewReader(data), end: end}
}

func (b *bytesBody) Read(p []byte) (int, error) {
	n, _ := b.r.Read(p)
	if b.r.Len() == 0 {
		return n, b.end
	}
	return n, nil
}

func (b *bytesBody) Abort()       {}
func (b *bytesBody) Close() error { b.closed.Store(true); return nil }

// Adopted parts serve their bytes; a part without a body is fetched
// through the Fetcher by the read that needs it, and nothing else is.
func TestAdoptPartsFetchesOnlyMissingParts(t *testing.T) {
	m := newMem(3 * MiB)
	e := New(m, int64(len(m.data)), &Options{MinStreak: 100})
	defer e.Close()
	bodies := []*bytesBody{newBody(m.data[:MiB], io.EOF), nil, newBody(m.data[2*MiB:], io.EOF)}
	parts := []AdoptedPart{{Off: 0, N: MiB}, {Off: MiB, N: MiB}, {Off: 2 * MiB, N: MiB}}
	for i, b := range bodies {
		if b != nil {
			parts[i].Body = b
		}
	}
	if !e.AdoptParts(parts, time.Minute) {
		t.Fatal("AdoptParts refused three contiguous parts")
	}
	if got := readAll(t, e, 256<<10); !bytes.Equal(got, m.data) {
		t.Fatal("bytes differ")
	}
	if m.bytes.Load() != MiB {
		t.Fatalf("the Fetcher was asked for %d bytes, want the missing part's %d", m.bytes.Load(), MiB)
	}
}

// With CommitAtEnd, a body that delivers all its bytes and then fails (a
// checksum checked after the bytes it covers) serves none of them: they
// are fetched again, and the reads see the object's bytes, not the body's.
func TestAdoptCommitAtEndServesNothingOfAFailedBody(t *testing.T) {
	m := newMem(2 * MiB)
	e := New(m, int64(len(m.data)), &Options{MinStreak: 100})
	defer e.Close()
	bad := bytes.Clone(m.data[:MiB])
	bad[1000] ^= 0xff
	errCRC := errors.New("bad CRC")
	body := newBody(bad, errCRC)
	parts := []AdoptedPart{{Off: 0, N: MiB, Body: body, CommitAtEnd: true}, {Off: MiB, N: MiB, Body: newBody(m.data[MiB:], io.EOF), CommitAtEnd: true}}
	if !e.AdoptParts(parts, time.Minute) {
		t.Fatal("AdoptParts refused")
	}
	if got := readAll(t, e, 64<<10); !bytes.Equal(got, m.data) {
		t.Fatal("bytes differ: the failed body's bytes were served")
	}
	if m.bytes.Load() != MiB {
		t.Fatalf("the Fetcher was asked for %d bytes, want the failed part's %d", m.bytes.Load(), MiB)
	}
	e.Close()
	if !body.closed.Load() {
		t.Fatal("the adopted body was not closed")
	}
}

// AdoptParts refuses, leaving the bodies to the caller, parts with a gap,
// out of order, outside the object, empty, or without any body.
func TestAdoptPartsRefuses(t *testing.T) {
	m := newMem(MiB)
	b := newBody(m.data[:1000], io.EOF)
	for name, parts := range map[string][]AdoptedPart{
		"gap":        {{Off: 0, N: 100, Body: b}, {Off: 200, N: 100, Body: b}},
		"overlap":    {{Off: 0, N: 100, Body: b}, {Off: 50, N: 100, Body: b}},
		"past end":   {{Off: MiB - 10, N: 100, Body: b}},
		"negative":   {{Off: -1, N: 100, Body: b}},
		"empty part": {{Off: 0, N: 0, Body: b}},
		"no body":    {{Off: 0, N: 100}},
		"none":       nil,
	} {
		e := New(m, int64(len(m.data)), nil)
		if e.AdoptParts(parts, time.Minute) {
			t.Errorf("%s: adopted", name)
		}
		e.Close()
	}
	if b.closed.Load() {
		t.Fatal("a refused body was closed")
	}
}

// halfFetcher delivers the first half of every range at once, reports it,
// and the rest only when gate closes: a ProgressFetcher in mid-flight.
type halfFetcher struct {
	*memFetcher
	gate chan struct{}
}

// ReadAt, which cannot report, holds a whole range past offset 0 until
// gate closes.
func (h *halfFetcher) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off == 0 {
		return h.memFetcher.ReadAt(ctx, p, off)
	}
	return h.ReadAtProgress(ctx, p, off, func(int64, bool) {})
}

func (h *halfFetcher) ReadAtProgress(ctx context.Context, p []byte, off int64, progress func(int64, bool)) (int, error) {
	half := len(p) / 2
	copy(p[:half], h.data[off:])
	progress(int64(half), true)
	select {
	case <-h.gate:
	case <-ctx.Done():
		return half, ctx.Err()
	}
	copy(p[half:], h.data[off+int64(half):])
	return len(p), nil
}

// A read of bytes a ProgressFetcher reported lands at once, while the rest
// of their part is still in flight.
func TestProgressFetcherServesBytesAsTheyLand(t *testing.T) {
	h := &halfFetcher{memFetcher: newMem(8 * MiB), gate: make(chan struct{})}
	e := New(h, int64(len(h.data)), &Options{StartAtZero: true, BlockSize: 2 * MiB, FirstWindow: 2 * MiB, MaxPrefetch: 2 * MiB, Concurrency: 1, MinPartSize: 2 * MiB})
	defer e.Close()
	// A Read at 0 (fetched directly) starts the window [512 KiB,
	// 2.5 MiB), one part, whose first half is reported at once; the gate
	// holds the rest.
	p := make([]byte, 512<<10)
	if _, err := e.Read(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := e.Read(context.Background(), p, 512<<10)
		read <- err
	}()
	var err error
	testkit.WaitFor(t, "the read of reported bytes", func() bool {
		select {
		case err = <-read:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, h.data[512<<10:1<<20]) {
		t.Fatal("bytes differ")
	}
	if st := e.Stats(); st.Served == 0 {
		t.Fatalf("stats %+v: the read was not served from the window in flight", st)
	}
	close(h.gate)
}
