package gcsfs_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
)

// hangBound ends a call that would otherwise wait for ever: it bounds a
// hang, it does not time anything (the calls take milliseconds).
const hangBound = 20 * time.Second

// WriteTo's windows come from the prefetch budget, which prefetched windows
// nobody reads may hold: its own file's, after a read of the file's head,
// or other open files' that were read a little and left. WriteTo used to
// wait for their readers, who never came: a single goroutine reading a
// header and then copying the rest hung. Now the files let go of their
// prefetched windows, and every copy ends with every byte.
func TestWriteToWhenPrefetchedWindowsHoldTheBudget(t *testing.T) {
	h := newFakeHarness(t, false)
	ctx := context.Background()
	const size = 8 << 20
	data := testkit.RandomBytes(size, 7)
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := h.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	opts := &gcsfs.Options{MaxPrefetch: 1 << 20, PrefetchBudget: 2 << 20}

	t.Run("own head read first", func(t *testing.T) {
		fsys, err := h.FS(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer fsys.Close()
		// Heads after which the file's own windows held the budget in a
		// sweep of 512 KiB to 2.5 MiB by 64 KiB.
		for _, kib := range []int64{512, 576, 1024, 1536, 1856, 1920, 2048, 2496} {
			head := kib << 10
			f, err := fsys.OpenContext(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, 64<<10)
			for n := int64(0); n < head; n += int64(len(p)) {
				if _, err := io.ReadFull(f, p); err != nil {
					t.Fatal(err)
				}
			}
			copyRest(t, f, data[head:])
			f.Close()
		}
	})

	t.Run("other files left open", func(t *testing.T) {
		fsys, err := h.FS(ctx, &gcsfs.Options{MaxPrefetch: 1 << 20, PrefetchBudget: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer fsys.Close()
		p := make([]byte, 100)
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			f, err := fsys.OpenContext(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for range 4 {
				if _, err := io.ReadFull(f, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		testkit.WaitFor(t, "the idle files' windows to fill the budget", func() bool {
			st := fsys.Stats()
			return st.BufferHigh >= st.BufferBudget
		})
		f, err := fsys.OpenContext(ctx, "f")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		copyRest(t, f, data)
	})

	t.Run("budget of one byte", func(t *testing.T) {
		// Windows of Budget/2 bytes were 0 bytes long: the copy looped
		// without moving.
		fsys, err := h.FS(ctx, &gcsfs.Options{PrefetchBudget: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer fsys.Close()
		small := data[:300]
		if err := h.Put(ctx, "small", small); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.OpenContext(ctx, "small")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		copyRest(t, f, small)
	})
}

// copyRest copies the rest of f with WriteToContext, bounded by hangBound,
// and checks it is want.
func copyRest(t *testing.T, f *gcsfs.File, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	var buf bytes.Buffer
	n, err := f.WriteToContext(ctx, &buf)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("WriteTo: %d bytes, %v; want %d", n, err, len(want))
	}
	testkit.SameBytes(t, "the copy", buf.Bytes(), want)
}
