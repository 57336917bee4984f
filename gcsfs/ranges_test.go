package gcsfs_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testserver"
)

// rangesCase are ranges in no order, overlapping, touching, a few bytes
// apart, far apart, and empty, over a 4 MiB object: with a 64 KiB gap they
// make three fetched spans.
var rangesCase = []gcsfs.Range{
	{Offset: 3 << 20, Length: 4096},        // span 3
	{Offset: 0, Length: 1000},              // span 1 ...
	{Offset: 500, Length: 1000},            // overlaps
	{Offset: 1500, Length: 10},             // touches
	{Offset: 9000, Length: 4096},           // 7.5 KiB further: same span
	{Offset: 1 << 20, Length: 3 << 20 / 4}, // span 2
	{Offset: 2 << 20, Length: 0},           // empty
	{Offset: 4<<20 - 10, Length: 10},       // ends at the end of the object: span 4
}

func TestReadRanges(t *testing.T) {
	for _, zonal := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "zonal"}[zonal]
		t.Run(name, func(t *testing.T) {
			h, data, ep := rangesRig(t, zonal, 2)
			ctx := context.Background()
			f := openRangesObj(t, h, 64<<10)
			ep.ResetStats()
			got, err := f.ReadRanges(ctx, rangesCase)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(rangesCase) {
				t.Fatalf("%d results for %d ranges", len(got), len(rangesCase))
			}
			var want int64
			for i, r := range rangesCase {
				if !bytes.Equal(got[i], data[r.Offset:r.Offset+r.Length]) {
					t.Fatalf("range %d (%d bytes at %d): wrong bytes", i, r.Length, r.Offset)
				}
				want += r.Length
			}
			// Spans: [0, 13096); [1 MiB, 1.75 MiB), one part (under two
			// MinPartSizes); [3 MiB, +4096); [4 MiB-10, 4 MiB).
			st := ep.Stats()
			if st.Requests != 4 {
				t.Fatalf("%d requests for 4 coalesced spans", st.Requests)
			}
			if spanBytes := int64(13096 + 3<<20/4 + 4096 + 10); st.Bytes != spanBytes {
				t.Fatalf("the server sent %d bytes, want the %d of the spans", st.Bytes, spanBytes)
			}

			// Without coalescing, every range that does not touch or
			// overlap another is its own request.
			f2 := openRangesObj(t, h, -1)
			ep.ResetStats()
			if _, err := f2.ReadRanges(ctx, rangesCase); err != nil {
				t.Fatal(err)
			}
			if st := ep.Stats(); st.Requests != 5 {
				t.Fatalf("%d requests without coalescing, want 5", st.Requests)
			}
		})
	}
}

// ReadRangesInto fills the caller's buffers, every byte, one fetch per
// non-empty range as given (no coalescing), and refuses buffers that do
// not match the ranges before anything is sent.
func TestReadRangesInto(t *testing.T) {
	for _, zonal := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "zonal"}[zonal]
		t.Run(name, func(t *testing.T) {
			h, data, ep := rangesRig(t, zonal, 3)
			ctx := context.Background()
			f := openRangesObj(t, h, 64<<10)
			dst := make([][]byte, len(rangesCase))
			var want int64
			for i, r := range rangesCase {
				dst[i] = bytes.Repeat([]byte{0xEE}, int(r.Length)) // a reused buffer's old bytes
				want += r.Length
			}
			ep.ResetStats()
			if err := f.ReadRangesInto(ctx, rangesCase, dst); err != nil {
				t.Fatal(err)
			}
			for i, r := range rangesCase {
				if !bytes.Equal(dst[i], data[r.Offset:r.Offset+r.Length]) {
					t.Fatalf("range %d (%d bytes at %d): wrong bytes", i, r.Length, r.Offset)
				}
			}
			if st := ep.Stats(); st.Requests != 7 || st.Bytes != want {
				t.Fatalf("%d requests and %d bytes sent, want 7 (one per non-empty range) and %d", st.Requests, st.Bytes, want)
			}

			for _, c := range []struct {
				dst  [][]byte
				what string
			}{
				{dst[:len(dst)-1], "7 buffers for 8 ranges"},
				{append(dst[:len(dst):len(dst)], nil), "9 buffers for 8 ranges"},
				{append(append([][]byte{}, dst[:1]...), append([][]byte{dst[1][:999]}, dst[2:]...)...), "buffer 1 holds 999 bytes for a 1000-byte range"},
			} {
				if err := f.ReadRangesInto(ctx, rangesCase, c.dst); !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), c.what) {
					t.Errorf("ReadRangesInto with bad buffers = %v; want fs.ErrInvalid naming %q", err, c.what)
				}
			}
			if err := f.ReadRangesInto(ctx, []gcsfs.Range{{4 << 20, 1}}, [][]byte{{0}}); !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), "range 0") {
				t.Errorf("ReadRangesInto past the end = %v; want fs.ErrInvalid naming range 0", err)
			}
			if st := ep.Stats(); st.Requests != 7 {
				t.Fatalf("refused calls reached the server: %d requests", st.Requests-7)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := f.ReadRangesInto(cctx, rangesCase, dst); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled ReadRangesInto = %v", err)
			}
			f.Close()
			if err := f.ReadRangesInto(ctx, rangesCase, dst); !errors.Is(err, fs.ErrClosed) {
				t.Fatalf("ReadRangesInto after Close = %v", err)
			}
		})
	}
}

func TestReadRangesErrors(t *testing.T) {
	h := newFakeHarness(t, false)
	ctx := context.Background()
	if err := h.Put(ctx, "obj", make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	fsys, err := h.FS(ctx, &gcsfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f, err := fsys.OpenContext(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	h.HTTP.ResetStats()
	for _, c := range []struct {
		rs   []gcsfs.Range
		what string
	}{
		{[]gcsfs.Range{{0, 10}, {995, 10}}, "range 1 (10 bytes at offset 995)"},
		{[]gcsfs.Range{{1000, 1}}, "range 0"},
		{[]gcsfs.Range{{-1, 1}}, "range 0"},
		{[]gcsfs.Range{{0, -1}}, "range 0"},
		{[]gcsfs.Range{{0, 1}, {math.MaxInt64 - 1, 10}}, "range 1"},
		{[]gcsfs.Range{{10, math.MaxInt64}}, "range 0"},
	} {
		got, err := f.ReadRanges(ctx, c.rs)
		if !errors.Is(err, fs.ErrInvalid) || got != nil || !strings.Contains(err.Error(), c.what) {
			t.Errorf("ReadRanges(%v) = %v, %v; want fs.ErrInvalid naming %q", c.rs, got, err, c.what)
		}
	}
	if st := h.HTTP.Stats(); st.Requests != 0 {
		t.Fatalf("invalid ranges reached the server: %d requests", st.Requests)
	}
	if got, err := f.ReadRanges(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no ranges = %v, %v", got, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.ReadRanges(cctx, []gcsfs.Range{{0, 10}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ReadRanges = %v", err)
	}
	f.Close()
	if _, err := f.ReadRanges(ctx, []gcsfs.Range{{0, 10}}); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("ReadRanges after Close = %v", err)
	}
}

// rangesRig stores "obj", 4 MiB of random bytes from seed, on a fake of
// the backend asked for; it returns the harness, the bytes and the
// endpoint that serves the reads.
func rangesRig(t *testing.T, zonal bool, seed byte) (*fakeHarness, []byte, *testserver.Endpoint) {
	t.Helper()
	h := newFakeHarness(t, zonal)
	data := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{seed}).Read(data)
	if err := h.Put(context.Background(), "obj", data); err != nil {
		t.Fatal(err)
	}
	if zonal {
		return h, data, h.GRPC
	}
	return h, data, h.HTTP
}

// openRangesObj opens "obj" through a new FS on h with the given
// CoalesceGap, 1 MiB parts and no prefetch; both close when t ends.
func openRangesObj(t *testing.T, h *fakeHarness, gap int64) *gcsfs.File {
	t.Helper()
	fsys, err := h.FS(context.Background(), &gcsfs.Options{CoalesceGap: gap, MinPartSize: 1 << 20, DisablePrefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	f, err := fsys.OpenContext(context.Background(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
