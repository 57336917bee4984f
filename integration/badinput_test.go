package integration

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
)

func TestBadURLs(t *testing.T) {
	for _, u := range []string{
		"",
		"no-scheme",
		"://missing",
		"foo://bucket",
		"gs://",
		"gs://bucket?zonal=maybe",
		"mem://?zonal=true",
		"file:///nonexistent/dir?zonal=on",
		"%gh&%ij",
	} {
		f, err := gcsfs.Open(context.Background(), u, nil)
		if err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		t.Logf("Open(%q): %v", u, err)
	}
}

// Zero-length, one-byte and prime-sized objects around part boundaries,
// through both backends; ranges past the end; negative offsets.
func TestEdgeSizes(t *testing.T) {
	forBoth(t, func(t *testing.T, r *rig) {
		opts := &gcsfs.Options{MinPartSize: 4096, Concurrency: 4, BlockSize: 4096, MaxPrefetch: 64 << 10}
		fsys := r.fs(t, opts)
		for _, n := range []int{0, 1, 4093, 4096, 4099, 16381, 16384, 16411, 65521, 65536, 65537} {
			src := testkit.RandomBytes(n, uint64(n))
			r.Put(t, "e", src)
			got, err := fsys.ReadFile("e")
			if err != nil {
				t.Fatalf("ReadFile(%d bytes): %v", n, err)
			}
			testkit.SameBytes(t, "ReadFile", got, src)
			f, err := fsys.OpenContext(context.Background(), "e")
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 10)
			if k, err := f.ReadAt(buf, int64(n)); k != 0 || err != io.EOF {
				t.Fatalf("ReadAt at the end of %d bytes = %d, %v", n, k, err)
			}
			if k, err := f.ReadAt(buf, int64(n)+100); k != 0 || err != io.EOF {
				t.Fatalf("ReadAt past the end of %d bytes = %d, %v", n, k, err)
			}
			if _, err := f.ReadAt(buf, -5); !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("ReadAt(-5) = %v", err)
			}
			f.Close()
		}
	})
}
