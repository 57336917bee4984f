package gcsfs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
)

// Every wait is bounded: a read that gets no byte for StallTimeout fails
// with ErrStalled, and Logger reports retries, stalls and replaced
// downloaders.
func ExampleOptions_stallTimeout() {
	ctx := context.Background()
	fsys, err := memWith(ctx, &gcsfs.Options{
		StallTimeout: 10 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, "greeting.txt", []byte("hello\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fsys.Close()
	data, err := fsys.ReadFile("greeting.txt")
	switch {
	case errors.Is(err, gcsfs.ErrStalled):
		fmt.Println("the server stopped answering:", err)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Print(string(data))
	}
	// Output: hello
}

// Open opens a bucket by URL: gs://bucket (zonal or not), mem://, or
// file:///dir. A nil *Options means the defaults (DefaultPoolSize,
// DefaultConcurrency, ...).
func ExampleOpen() {
	ctx := context.Background()
	fsys, err := gcsfs.Open(ctx, "mem://", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fsys.Close()
	if err := fsys.Bucket().WriteAll(ctx, "logs/a.txt", []byte("a\n"), nil); err != nil {
		fmt.Println(err)
		return
	}
	// The FS is an fs.FS: the io/fs helpers work on it.
	err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Println(path, d.IsDir())
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println(fsys.Zonal())
	// Output:
	// . true
	// logs true
	// logs/a.txt false
	// false
}

// ReadFile reads a whole object into one buffer of its size, fetched in
// Concurrency ranges in parallel.
func ExampleFS_ReadFile() {
	ctx := context.Background()
	fsys, err := memWith(ctx, &gcsfs.Options{Concurrency: 4}, "data.txt", []byte("every byte of data.txt\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fsys.Close()
	data, err := fsys.ReadFile("data.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(data))
	_, err = fsys.ReadFile("missing.txt")
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// every byte of data.txt
	// true
}

// A sequential copy: io.Copy uses the File's WriteTo, which fetches windows
// of MaxPrefetch bytes in parallel ranges while the previous window is
// written, so memory stays bounded for any object size.
func ExampleFile_WriteTo() {
	ctx := context.Background()
	file, done, err := memFile(ctx, "big.bin", bytes.Repeat([]byte("0123456789"), 300_000))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	h := sha256.New()
	n, err := io.Copy(h, file)
	if err != nil {
		fmt.Println(err)
		return
	}
	want := sha256.Sum256(bytes.Repeat([]byte("0123456789"), 300_000))
	fmt.Println(n, bytes.Equal(h.Sum(nil), want[:]))
	// Output: 3000000 true
}

// ReadAt reads any range, from any goroutine; random reads fetch exactly
// their bytes, and a read that runs past the end returns io.EOF with the
// bytes that were there.
func ExampleFile_ReadAt() {
	ctx := context.Background()
	file, done, err := memFile(ctx, "abc.txt", []byte("abcdefghijklmnopqrstuvwxyz"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	buf := make([]byte, 5)
	n, err := file.ReadAt(buf, 10)
	fmt.Printf("%q %v\n", buf[:n], err)
	n, err = file.ReadAt(buf, 23)
	fmt.Printf("%q %v\n", buf[:n], err)
	// Output:
	// "klmno" <nil>
	// "xyz" EOF
}

// ReadRanges fetches many ranges of one file at once (neighbours as one
// request) and returns them in the order asked: here a Parquet-like footer
// and two column chunks.
func ExampleFile_ReadRanges() {
	ctx := context.Background()
	file, done, err := memFile(ctx, "abc.txt", []byte("abcdefghijklmnopqrstuvwxyz"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	got, err := file.ReadRanges(ctx, []gcsfs.Range{{Offset: 22, Length: 4}, {Offset: 0, Length: 3}, {Offset: 10, Length: 2}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q\n", got)
	_, err = file.ReadRanges(ctx, []gcsfs.Range{{Offset: 20, Length: 10}})
	fmt.Println(errors.Is(err, fs.ErrInvalid))
	// Output:
	// ["wxyz" "abc" "kl"]
	// true
}

// ReadRangesInto fills buffers the caller keeps and reuses: one backing
// array here, cut into a buffer per range.
func ExampleFile_ReadRangesInto() {
	ctx := context.Background()
	file, done, err := memFile(ctx, "abc.txt", []byte("abcdefghijklmnopqrstuvwxyz"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	backing := make([]byte, 7)
	rs := []gcsfs.Range{{Offset: 22, Length: 4}, {Offset: 0, Length: 3}}
	if err := file.ReadRangesInto(ctx, rs, [][]byte{backing[:4], backing[4:]}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q\n", backing)
	// Output:
	// "wxyzabc"
}

// memWith opens a mem:// FS with opts holding one object, name with data:
// where the examples that read start from.
func memWith(ctx context.Context, opts *gcsfs.Options, name string, data []byte) (*gcsfs.FS, error) {
	fsys, err := gcsfs.Open(ctx, "mem://", opts)
	if err != nil {
		return nil, err
	}
	if err := fsys.Bucket().WriteAll(ctx, name, data, nil); err != nil {
		fsys.Close()
		return nil, err
	}
	return fsys, nil
}

// memFile opens name, holding data, on a mem:// FS with the defaults;
// done closes both.
func memFile(ctx context.Context, name string, data []byte) (file *gcsfs.File, done func(), err error) {
	fsys, err := memWith(ctx, nil, name, data)
	if err != nil {
		return nil, nil, err
	}
	if file, err = fsys.OpenContext(ctx, name); err != nil {
		fsys.Close()
		return nil, nil, err
	}
	return file, func() { file.Close(); fsys.Close() }, nil
}

// Hedge turns hedged random reads on, for a link with a tail of slow
// requests: a random read with no first byte after the p95 of the FS's
// recent times to first byte sends a second request and takes whichever
// answers first. Stats.Hedges counts the second requests.
func ExampleOptions_hedge() {
	ctx := context.Background()
	fsys, err := memWith(ctx, &gcsfs.Options{Hedge: true}, "table.bin", bytes.Repeat([]byte("0123456789"), 1000))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fsys.Close()
	f, err := fsys.OpenContext(ctx, "table.bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	buf := make([]byte, 4)
	for _, off := range []int64{7000, 123, 4567} {
		if _, err := f.ReadAt(buf, off); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s ", buf)
	}
	fmt.Println()
	// Output: 0123 3456 7890
}

// OpenVersion opens a file at the version a listing saw. On GCS it sends
// no request (the first read is the first round trip) and reads that
// generation only; a file overwritten since fails with ErrObjectChanged.
func ExampleFS_OpenVersion() {
	ctx := context.Background()
	fsys, err := memWith(ctx, nil, "shards/a.bin", []byte("shard a"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fsys.Close()
	entries, err := fsys.ReadDirContext(ctx, "shards")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			fmt.Println(err)
			return
		}
		v, _ := gcsfs.VersionOf(info)
		f, err := fsys.OpenVersion(ctx, "shards/"+e.Name(), v)
		if err != nil {
			fmt.Println(err)
			return
		}
		data, err := io.ReadAll(f)
		f.Close()
		switch {
		case errors.Is(err, gcsfs.ErrObjectChanged):
			fmt.Println("overwritten since the listing")
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("%s: %s\n", e.Name(), data)
		}
	}
	// Output: a.bin: shard a
}
