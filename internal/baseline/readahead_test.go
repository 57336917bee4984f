package baseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/internal/testkit"
)

func newObject(t testing.TB, size int) (*blob.Bucket, []byte) {
	t.Helper()
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { b.Close() })
	data := testkit.RandomBytes(size, uint64(size))
	if err := b.WriteAll(context.Background(), "obj", data, nil); err != nil {
		t.Fatal(err)
	}
	return b, data
}

// A trace of reads against fsspec's ReadAheadCache rules: each step's
// bytes, and the bytes and ranged reads fetched so far.
func TestReadaheadTrace(t *testing.T) {
	b, data := newObject(t, 100)
	r := NewReadahead(b, "obj", 100, 10)
	for _, s := range []struct {
		off, n           int64
		got              int
		eof              bool
		fetched, fetches int64
	}{
		{0, 5, 5, false, 15, 1},    // miss: [0, 5+10)
		{5, 5, 5, false, 15, 1},    // hit
		{10, 10, 10, false, 30, 2}, // partial hit: keeps [10,15), fetches [15, 20+10)
		{50, 5, 5, false, 45, 3},   // miss: [50, 65)
		{40, 5, 5, false, 60, 4},   // before the block: miss, [40, 55)
		{95, 10, 5, true, 65, 5},   // runs past the end: [95, 100), io.EOF
		{100, 1, 0, true, 65, 5},   // at the end: nothing fetched
		{0, 0, 0, false, 65, 5},    // empty read
	} {
		p := make([]byte, s.n)
		got, err := r.ReadAt(context.Background(), p, s.off)
		if got != s.got || (err == io.EOF) != s.eof || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, eof %v", s.n, s.off, got, err, s.got, s.eof)
		}
		if !bytes.Equal(p[:got], data[s.off:s.off+int64(got)]) {
			t.Fatalf("ReadAt(%d bytes at %d): bytes differ", s.n, s.off)
		}
		if r.Fetched() != s.fetched || r.Fetches() != s.fetches {
			t.Fatalf("after ReadAt(%d bytes at %d): fetched %d in %d reads, want %d in %d", s.n, s.off, r.Fetched(), r.Fetches(), s.fetched, s.fetches)
		}
	}
	if _, err := r.ReadAt(context.Background(), make([]byte, 1), -1); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("ReadAt at -1: %v", err)
	}
}

// Sequential reads of any size fetch every byte once: a read that runs
// past the block keeps its tail instead of fetching it again.
func TestReadaheadSequential(t *testing.T) {
	const size = 1<<20 + 12345
	b, data := newObject(t, size)
	for _, c := range []struct{ read, ahead int64 }{{333333, 1 << 20}, {4096, 0}, {1 << 20, 5 << 20}, {size, 0}} {
		r := NewReadahead(b, "obj", size, c.ahead)
		var got bytes.Buffer
		p := make([]byte, c.read)
		for off := int64(0); ; off += c.read {
			n, err := r.ReadAt(context.Background(), p, off)
			got.Write(p[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), data) || r.Fetched() != size {
			t.Errorf("reads of %d, readahead %d: %d bytes (equal %v), fetched %d", c.read, c.ahead, got.Len(), bytes.Equal(got.Bytes(), data), r.Fetched())
		}
	}
}

// A failed fetch returns its error.
func TestReadaheadMissingObject(t *testing.T) {
	b, _ := newObject(t, 10)
	r := NewReadahead(b, "nope", 10, 4)
	if n, err := r.ReadAt(context.Background(), make([]byte, 2), 0); err == nil || n != 0 {
		t.Fatalf("read of a missing object = %d, %v", n, err)
	}
}

func ExampleReadahead() {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	if err := b.WriteAll(ctx, "log.txt", bytes.Repeat([]byte("0123456789"), 10), nil); err != nil {
		panic(err)
	}
	r := NewReadahead(b, "log.txt", 100, 30)
	p := make([]byte, 10)
	for off := int64(0); off < 100; off += 10 {
		if _, err := r.ReadAt(ctx, p, off); err != nil && err != io.EOF {
			panic(err)
		}
	}
	fmt.Println(r.Fetched(), "bytes in", r.Fetches(), "ranged reads")
	// Output: 100 bytes in 3 ranged reads
}
