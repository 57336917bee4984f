package gcsfs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math"
	"math/big"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/byterange"
	"github.com/zonalread/zonalread/internal/testkit"
)

// FuzzFile drives a File with a random sequence of Read, ReadAt, Seek and
// zero-length reads and compares every result with bytes.Reader over the
// same data. Small windows and parts make short programs cross prefetch,
// part and object boundaries. The seed corpus runs in `make test`; fuzz
// with `go test -fuzz FuzzFile ./gcsfs`.
func FuzzFile(f *testing.F) {
	f.Add(uint16(1000), []byte{0, 10, 0, 0, 10, 0, 0, 10, 0, 0, 10, 0})
	f.Add(uint16(0), []byte{0, 5, 0, 1, 0, 0, 2, 1, 0})
	f.Add(uint16(1), []byte{3, 0, 0, 0, 1, 0, 1, 1, 0})
	f.Add(uint16(40000), []byte{2, 0, 0, 0, 200, 0, 0, 200, 0, 0, 200, 0, 1, 100, 0, 2, 1, 0, 0, 250, 0})
	f.Add(uint16(65535), []byte{0, 255, 255, 2, 0, 0, 0, 255, 3, 1, 17, 0, 3, 0, 0, 0, 255, 255})
	data := testkit.RandomBytes(1<<16, 99)
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	ctx := context.Background()
	fsys, err := gcsfs.New(ctx, bucket, &gcsfs.Options{
		BlockSize: 512, MaxPrefetch: 4096, MinPartSize: 256, Concurrency: 3, PoolSize: 2, PrefetchBudget: 16 << 10,
	})
	if err != nil {
		f.Fatal(err)
	}
	defer fsys.Close()
	f.Fuzz(func(t *testing.T, size uint16, prog []byte) {
		src := data[:size]
		if err := bucket.WriteAll(ctx, "obj", src, nil); err != nil {
			t.Fatal(err)
		}
		file, err := fsys.OpenContext(ctx, "obj")
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		ref := bytes.NewReader(src)
		for len(prog) >= 3 {
			op, arg := prog[0]%5, int64(binary.LittleEndian.Uint16(prog[1:3]))
			prog = prog[3:]
			switch op {
			case 0: // Read of arg%4096 bytes
				n := int(arg % 4096)
				got, want := make([]byte, n), make([]byte, n)
				gn, gerr := file.Read(got)
				wn, werr := ref.Read(want)
				if n == 0 {
					// Like os.File, a zero-length read returns 0, nil even
					// at EOF, where bytes.Reader says EOF.
					wn, werr = 0, nil
				}
				if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || !sameErr(gerr, werr) {
					t.Fatalf("Read(%d) = %d, %v; want %d, %v", n, gn, gerr, wn, werr)
				}
			case 1: // ReadAt
				n := int(arg % 2048)
				off := int64(binary.LittleEndian.Uint16([]byte{byte(arg), byte(arg >> 3)}))
				got, want := make([]byte, n), make([]byte, n)
				gn, gerr := file.ReadAt(got, off)
				wn, werr := ref.ReadAt(want, off)
				if n == 0 {
					wn, werr = 0, nil // as above
				}
				if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || !sameErr(gerr, werr) {
					t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d, %v", n, off, gn, gerr, wn, werr)
				}
			case 2: // Seek
				whence := int(arg % 3)
				off := arg - 32768
				gp, gerr := file.Seek(off, whence)
				wp, werr := ref.Seek(off, whence)
				if (gerr == nil) != (werr == nil) || (gerr == nil && gp != wp) {
					t.Fatalf("Seek(%d, %d) = %d, %v; want %d, %v", off, whence, gp, gerr, wp, werr)
				}
			case 3: // zero-length read: no effect on anything
				if n, err := file.Read(nil); n != 0 || err != nil {
					t.Fatalf("Read(nil) = %d, %v", n, err)
				}
			case 4: // WriteTo the rest
				var got, want bytes.Buffer
				gn, gerr := file.WriteTo(&got)
				wn, werr := ref.WriteTo(&want)
				if gn != wn || !bytes.Equal(got.Bytes(), want.Bytes()) || gerr != nil || werr != nil {
					t.Fatalf("WriteTo = %d, %v; want %d, %v", gn, gerr, wn, werr)
				}
			}
		}
	})
}

func sameErr(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

// FuzzRanges calls WriteRangeContext, ReadAt and Seek with offsets and
// lengths anywhere in int64, those near MaxInt64 included (where off+n
// wraps negative): WriteRangeContext writes exactly the range or fails with
// fs.ErrInvalid when it is outside the object, never (0, nil) for a
// non-empty range; ReadAt behaves like bytes.Reader; Seek fails with
// fs.ErrInvalid when the position is negative or overflows. The seed
// corpus runs in `make test`.
func FuzzRanges(f *testing.F) {
	const M = math.MaxInt64
	for _, s := range [][3]int64{
		{0, 1000, 0}, {999, 1, 1}, {1000, 0, 2}, {M - 5, 10, 0}, {M, 1, 1}, {5, M, 2},
		{M, M, 1}, {-1, 5, 0}, {math.MinInt64, 1, 2}, {M - 999, 1000, 1},
	} {
		f.Add(s[0], s[1], uint8(s[2]))
	}
	data := testkit.RandomBytes(1000, 5)
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	ctx := context.Background()
	if err := bucket.WriteAll(ctx, "obj", data, nil); err != nil {
		f.Fatal(err)
	}
	fsys, err := gcsfs.New(ctx, bucket, &gcsfs.Options{BlockSize: 64, MaxPrefetch: 256, MinPartSize: 32, PrefetchBudget: 4096})
	if err != nil {
		f.Fatal(err)
	}
	defer fsys.Close()
	f.Fuzz(func(t *testing.T, off, n int64, whence uint8) {
		file, err := fsys.OpenContext(ctx, "obj")
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		var buf bytes.Buffer
		got, err := file.WriteRangeContext(ctx, &buf, off, n)
		if byterange.Within(off, n, int64(len(data))) {
			if err != nil || got != n || !bytes.Equal(buf.Bytes(), data[off:off+n]) {
				t.Fatalf("WriteRangeContext(%d, %d) = %d, %v", off, n, got, err)
			}
		} else if got != 0 || !errors.Is(err, fs.ErrInvalid) {
			t.Fatalf("WriteRangeContext(%d, %d) = %d, %v; want fs.ErrInvalid", off, n, got, err)
		}

		p, q := make([]byte, n&1023), make([]byte, n&1023)
		gn, gerr := file.ReadAt(p, off)
		if off < 0 {
			if !errors.Is(gerr, fs.ErrInvalid) {
				t.Fatalf("ReadAt(%d) = %d, %v; want fs.ErrInvalid", off, gn, gerr)
			}
		} else {
			wn, werr := bytes.NewReader(data).ReadAt(q, off)
			if len(p) == 0 {
				wn, werr = 0, nil
			}
			if gn != wn || !bytes.Equal(p[:gn], q[:wn]) || !sameErr(gerr, werr) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", len(p), off, gn, gerr, wn, werr)
			}
		}

		w := int(whence % 3)
		if _, err := file.Seek(n, io.SeekStart); err != nil && n >= 0 {
			t.Fatalf("Seek(%d, start) = %v", n, err)
		}
		base := map[int]*big.Int{io.SeekStart: big.NewInt(0), io.SeekCurrent: big.NewInt(max(n, 0)), io.SeekEnd: big.NewInt(int64(len(data)))}[w]
		want := new(big.Int).Add(base, big.NewInt(off))
		pos, err := file.Seek(off, w)
		if want.Sign() < 0 || !want.IsInt64() {
			if !errors.Is(err, fs.ErrInvalid) {
				t.Fatalf("Seek(%d, %d) from %v = %d, %v; want fs.ErrInvalid", off, w, base, pos, err)
			}
		} else if err != nil || pos != want.Int64() {
			t.Fatalf("Seek(%d, %d) from %v = %d, %v; want %v", off, w, base, pos, err, want)
		}
	})
}
