// Package gcsfstest is a conformance suite for gcsfs over any backend, in
// the manner of gocloud's drivertest: every backend (memblob, the HTTP fake,
// the gRPC multi-range-downloader fake) runs the same tests, including
// testing/fstest.TestFS and testing/iotest.TestReader, and every byte read
// is compared with what was written.
package gcsfstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/fstest"
	"testing/iotest"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
)

// Harness gives the suite one empty bucket of a backend.
type Harness interface {
	// Put creates or overwrites an object.
	Put(ctx context.Context, name string, data []byte) error
	// Delete removes an object.
	Delete(ctx context.Context, name string) error
	// FS returns a new FS over the bucket; the suite closes it.
	FS(ctx context.Context, opts *gcsfs.Options) (*gcsfs.FS, error)
	// Close releases the harness.
	Close()
}

// RunConformanceTests runs the suite; newHarness is called once per test
// for a fresh, empty bucket.
func RunConformanceTests(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"TestFS", testFSTest},
		{"Names", testNames},
		{"ReadFileSizes", testReadFileSizes},
		{"SequentialRead", testSequentialRead},
		{"IOTestReader", testIOTestReader},
		{"RandomReadAt", testRandomReadAt},
		{"WriteTo", testWriteTo},
		{"ConcurrentReaders", testConcurrentReaders},
		{"Errors", testErrors},
		{"Overwritten", testOverwritten},
		{"OpenVersion", testOpenVersion},
		{"ContextCanceled", testContextCanceled},
		{"CloseFS", testCloseFS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			defer h.Close()
			tc.fn(t, h)
		})
	}
}

// smallOpts makes windows and parts small so small objects exercise
// prefetching, splitting and part boundaries.
func smallOpts() *gcsfs.Options {
	return &gcsfs.Options{BlockSize: 16 << 10, MaxPrefetch: 256 << 10, MinPartSize: 8 << 10, Concurrency: 4, PoolSize: 3, PrefetchBudget: 1 << 20}
}

func put(t *testing.T, h Harness, name string, data []byte) {
	t.Helper()
	if err := h.Put(context.Background(), name, data); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func openFS(t *testing.T, h Harness, opts *gcsfs.Options) *gcsfs.FS {
	t.Helper()
	f, err := h.FS(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func testFSTest(t *testing.T, h Harness) {
	files := map[string][]byte{
		"a.txt":             []byte("hello"),
		"empty":             {},
		"dir/b.txt":         []byte("bee"),
		"dir/sub/c.bin":     testkit.RandomBytes(100<<10+3, 1),
		"dir/sub/d.bin":     testkit.RandomBytes(7, 2),
		"dir.x/e":           []byte("e"),
		"deep/er/still/f.z": testkit.RandomBytes(12345, 3),
	}
	var names []string
	for name, data := range files {
		put(t, h, name, data)
		names = append(names, name)
	}
	f := openFS(t, h, smallOpts())
	if err := fstest.TestFS(f, names...); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		got, err := f.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, name, got, data)
	}
	m, err := f.Glob("dir/sub/*.bin")
	if err != nil || len(m) != 2 || m[0] != "dir/sub/c.bin" || m[1] != "dir/sub/d.bin" {
		t.Fatalf("Glob = %v, %v", m, err)
	}
}

// Sizes around part and window boundaries (primes next to them).
var sizes = []int{0, 1, 2, 8<<10 - 1, 8 << 10, 8<<10 + 1, 32<<10 + 7, 65521, 256<<10 + 1, 1<<20 + 13}

func testReadFileSizes(t *testing.T, h Harness) {
	f := openFS(t, h, smallOpts())
	for i, n := range sizes {
		name := fmt.Sprintf("obj-%d", n)
		data := testkit.RandomBytes(n, uint64(i))
		put(t, h, name, data)
		got, err := f.ReadFile(name)
		if err != nil {
			t.Fatalf("ReadFile %s: %v", name, err)
		}
		testkit.SameBytes(t, name, got, data)
	}
}

func testSequentialRead(t *testing.T, h Harness) {
	data := testkit.RandomBytes(2<<20+17, 7)
	put(t, h, "big", data)
	for _, chunk := range []int{1000, 4 << 10, 64 << 10, 300 << 10} {
		f := openFS(t, h, smallOpts())
		file, err := f.OpenContext(context.Background(), "big")
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadInChunks(file, chunk)
		if err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, fmt.Sprintf("read in %d-byte chunks", chunk), got, data)
		s := file.Stats()
		if s.Prefetched == 0 {
			t.Errorf("chunk %d: a sequential read did not prefetch: %+v", chunk, s)
		}
		file.Close()
	}
}

// ReadInChunks reads r to EOF with Read calls of chunk bytes.
func ReadInChunks(r io.Reader, chunk int) ([]byte, error) {
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func testIOTestReader(t *testing.T, h Harness) {
	for i, n := range []int{0, 1, 40<<10 + 1} {
		data := testkit.RandomBytes(n, uint64(100+i))
		name := fmt.Sprintf("r%d", n)
		put(t, h, name, data)
		f := openFS(t, h, smallOpts())
		file, err := f.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := iotest.TestReader(file, data); err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		file.Close()
	}
}

func testRandomReadAt(t *testing.T, h Harness) {
	data := testkit.RandomBytes(1<<20+3, 11)
	put(t, h, "rnd", data)
	f := openFS(t, h, smallOpts())
	file, err := f.OpenContext(context.Background(), "rnd")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r := rand.New(rand.NewPCG(3, 4))
	var asked int64
	for range 200 {
		n := 1 + r.IntN(4<<10)
		off := r.Int64N(int64(len(data) - n))
		buf := make([]byte, n)
		if _, err := file.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, fmt.Sprintf("ReadAt(%d, %d)", off, n), buf, data[off:off+int64(n)])
		asked += int64(n)
	}
	// Random reads never prefetch: what is fetched is what was asked.
	if s := file.Stats(); s.Fetched != asked || s.Prefetched != 0 {
		t.Fatalf("random reads fetched %d for %d asked: %+v", s.Fetched, asked, s)
	}
}

func testWriteTo(t *testing.T, h Harness) {
	data := testkit.RandomBytes(3<<20+5, 12)
	put(t, h, "wt", data)
	f := openFS(t, h, smallOpts())
	file, err := f.OpenContext(context.Background(), "wt")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := file.WriteTo(&buf)
	if err != nil || n != int64(len(data)-1000) {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	testkit.SameBytes(t, "WriteTo", buf.Bytes(), data[1000:])
	if n, err := file.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after WriteTo = %d, %v; want EOF", n, err)
	}
}

func testConcurrentReaders(t *testing.T, h Harness) {
	data := testkit.RandomBytes(1<<20, 13)
	put(t, h, "shared", data)
	opts := smallOpts()
	opts.PoolSize = 2
	f := openFS(t, h, opts)
	file, err := f.OpenContext(context.Background(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			if g%2 == 0 {
				got, err := f.ReadFile("shared")
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(got, data) {
					t.Error("ReadFile mismatch")
				}
				return
			}
			r := rand.New(rand.NewPCG(uint64(g), 0))
			for range 30 {
				n := 1 + r.IntN(20<<10)
				off := r.Int64N(int64(len(data) - n))
				buf := make([]byte, n)
				if _, err := file.ReadAt(buf, off); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf, data[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d,%d) mismatch", off, n)
					return
				}
			}
		})
	}
	wg.Wait()
}

func testErrors(t *testing.T, h Harness) {
	put(t, h, "x", []byte("0123456789"))
	f := openFS(t, h, smallOpts())
	for _, name := range []string{"", "/x", "x/", "a/../x", "./x", "a//b"} {
		if _, err := f.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := f.Open("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
	if _, err := f.ReadFile("nope/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want ErrNotExist", err)
	}
	if _, err := f.Stat("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v", err)
	}
	file, err := f.OpenContext(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := file.ReadAt(buf, -1); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadAt(-1) = %v, want ErrInvalid", err)
	}
	if n, err := file.ReadAt(buf, 8); n != 2 || err != io.EOF || string(buf[:2]) != "89" {
		t.Errorf("ReadAt across the end = %d, %v", n, err)
	}
	if n, err := file.ReadAt(buf, 100); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v", n, err)
	}
	if _, err := file.Seek(-1, io.SeekStart); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Seek(-1) = %v", err)
	}
	if _, err := file.Seek(5, io.SeekEnd); err != nil {
		t.Errorf("Seek past end = %v", err)
	}
	if n, err := file.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read past end = %d, %v", n, err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
	if _, err := file.Read(buf); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if _, err := file.ReadAt(buf, 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadAt after Close = %v", err)
	}
}

// An object overwritten (or deleted) after open: a read returns the old
// bytes or an error wrapping ErrObjectChanged, never a mix.
func testOverwritten(t *testing.T, h Harness) {
	old := testkit.RandomBytes(200<<10, 20)
	put(t, h, "ow", old)
	opts := smallOpts()
	opts.DisablePrefetch = true // nothing cached: every read goes to the server
	f := openFS(t, h, opts)
	for _, change := range []string{"overwrite", "delete"} {
		put(t, h, "ow", old)
		file, err := f.OpenContext(context.Background(), "ow")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10<<10)
		if _, err := file.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		if change == "overwrite" {
			put(t, h, "ow", testkit.RandomBytes(200<<10, 21))
		} else if err := h.Delete(context.Background(), "ow"); err != nil {
			t.Fatal(err)
		}
		_, err = file.ReadAt(buf, 100<<10)
		switch {
		case err == nil:
			testkit.SameBytes(t, change, buf, old[100<<10:110<<10])
		case !errors.Is(err, gcsfs.ErrObjectChanged):
			t.Fatalf("%s: read = %v, want old bytes or ErrObjectChanged", change, err)
		}
		file.Close()
	}
}

func testContextCanceled(t *testing.T, h Harness) {
	put(t, h, "c", testkit.RandomBytes(100<<10, 30))
	f := openFS(t, h, smallOpts())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.OpenContext(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("OpenContext(canceled) = %v", err)
	}
	file, err := f.OpenContext(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.ReadAtContext(ctx, make([]byte, 10), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAtContext(canceled) = %v", err)
	}
	if _, err := f.ReadFileContext(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadFileContext(canceled) = %v", err)
	}
}

func testCloseFS(t *testing.T, h Harness) {
	put(t, h, "z", []byte("zz"))
	f, err := h.FS(context.Background(), smallOpts())
	if err != nil {
		t.Fatal(err)
	}
	file, err := f.OpenContext(context.Background(), "z")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := file.ReadAt(make([]byte, 1), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("read from a file of a closed FS = %v", err)
	}
	if _, err := f.Open("z"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Open after Close = %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second FS Close = %v", err)
	}
}
