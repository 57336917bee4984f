package directbuf

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/zonalread/zonalread/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConcurrentSectionsAssembleSource(t *testing.T) {
	src := testkit.RandomBytes(1<<20+7, 1)
	b := New(len(src))
	const parts = 8
	part := (len(src) + parts - 1) / parts
	var wg sync.WaitGroup
	for off := 0; off < len(src); off += part {
		end := min(off+part, len(src))
		wg.Go(func() {
			w := b.section(int64(off), int64(end-off))
			// Write in uneven pieces, as a downloader would.
			for p := src[off:end]; len(p) > 0; {
				n := min(len(p), 4093)
				if _, err := w.Write(p[:n]); err != nil {
					t.Error(err)
					return
				}
				p = p[n:]
			}
			if w.Remaining() != 0 {
				t.Errorf("section [%d,%d) has %d bytes left", off, end, w.Remaining())
			}
			w.Commit()
		})
	}
	if err := b.Wait(context.Background(), 0, int64(len(src))); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(b.Bytes(), src) {
		t.Fatal("assembled bytes differ from source")
	}
}

func TestWaitReturnsOnlyNeededBytes(t *testing.T) {
	b := New(100)
	w := b.section(0, 100)
	if _, err := w.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Uncommitted bytes are not visible.
	if b.Written(0, 1) {
		t.Fatal("uncommitted bytes visible")
	}
	w.Commit()
	// The first 10 bytes are there; a wait for them must not need the rest.
	if err := b.Wait(ctx, 0, 10); err != nil {
		t.Fatalf("Wait for written bytes = %v, want nil", err)
	}
	if err := b.Wait(ctx, 5, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait for missing bytes with cancelled ctx = %v, want Canceled", err)
	}
	if !b.Written(0, 10) || b.Written(0, 11) {
		t.Fatal("Written reports wrong coverage")
	}
}

func TestFailReachesOverlappingWaiterOnly(t *testing.T) {
	b := New(100)
	boom := errors.New("boom")
	b.WriteAt(make([]byte, 50), 0)
	b.Fail(50, 50, boom)
	if err := b.Wait(context.Background(), 0, 50); err != nil {
		t.Fatalf("bytes before the failure: %v", err)
	}
	if err := b.Wait(context.Background(), 40, 20); !errors.Is(err, boom) {
		t.Fatalf("overlapping wait = %v, want boom", err)
	}
	// A retry that writes the failed range heals it.
	b.WriteAt(make([]byte, 50), 50)
	if err := b.Wait(context.Background(), 40, 60); err != nil {
		t.Fatalf("after rewrite: %v", err)
	}
}

func TestWaitWakesOnWrite(t *testing.T) {
	b := New(64)
	done := make(chan error)
	go func() { done <- b.Wait(context.Background(), 32, 32) }()
	b.WriteAt(make([]byte, 32), 0)
	b.WriteAt(make([]byte, 32), 32)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSectionOverflow(t *testing.T) {
	b := New(10)
	w := b.section(2, 4)
	n, err := w.Write([]byte("abcdef"))
	if n != 4 || !errors.Is(err, errOverflow) {
		t.Fatalf("Write = %d, %v; want 4, errOverflow", n, err)
	}
	if got := string(b.Bytes()[2:6]); got != "abcd" {
		t.Fatalf("got %q", got)
	}
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", name)
		}
	}()
	f()
}

func TestMisusePanics(t *testing.T) {
	mustPanic(t, "WriteAt past end", func() { New(4).WriteAt(make([]byte, 5), 0) })
	mustPanic(t, "negative offset", func() { New(4).WriteAt(nil, -1) })
	mustPanic(t, "Section past end", func() { New(4).section(2, 3) })
	mustPanic(t, "negative size", func() { New(-1) })
	mustPanic(t, "Fail nil", func() { New(4).Fail(0, 1, nil) })
	mustPanic(t, "double release", func() {
		b := New(4)
		b.Release()
		b.Release()
	})
	mustPanic(t, "use after release", func() {
		b := New(4)
		b.Release()
		b.Bytes()
	})
}

func TestRangeSet(t *testing.T) {
	var s rangeSet
	s.add(10, 20)
	s.add(30, 40)
	s.add(0, 5)
	s.add(20, 30) // bridges two
	if len(s) != 2 || s[0] != (interval{0, 5}) || s[1] != (interval{10, 40}) {
		t.Fatalf("got %v", s)
	}
	s.add(5, 10)
	if len(s) != 1 || s[0] != (interval{0, 40}) {
		t.Fatalf("got %v", s)
	}
	if !s.covers(0, 40) || s.covers(0, 41) || !s.covers(7, 7) {
		t.Fatal("covers wrong")
	}
}

// Assembling an object through Sections allocates nothing beyond the buffer
// itself: no per-chunk allocation, no append growth.
func TestAssemblyAllocatesOnlyTheBuffer(t *testing.T) {
	src := testkit.RandomBytes(1<<20, 2)
	allocs := testing.AllocsPerRun(20, func() {
		b := New(len(src))
		for off := 0; off < len(src); off += 1 << 17 {
			w := b.section(int64(off), 1<<17)
			for p := src[off : off+1<<17]; len(p) > 0; p = p[32<<10:] {
				w.Write(p[:32<<10])
			}
		}
	})
	// New: the Buffer struct, its data, its notify channel; each of the 8
	// Section structs may escape; each Commit may grow the range set once.
	// Nothing may be proportional to the number of writes or bytes copied.
	if allocs > 3+8+2 {
		t.Fatalf("%.0f allocations to assemble 1 MiB", allocs)
	}
}
