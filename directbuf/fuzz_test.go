package directbuf

import (
	"context"
	"math"
	"testing"

	"github.com/zonalread/zonalread/internal/byterange"
)

// FuzzBufferRanges calls every range-taking method with any (off, n),
// those near MaxInt64 included (where off+n wraps negative): each panics
// exactly when the range is outside the buffer, and otherwise acts on
// exactly that range. The seed corpus runs in `make test`.
func FuzzBufferRanges(f *testing.F) {
	const M = math.MaxInt64
	for _, s := range [][2]int64{{0, 0}, {0, 64}, {63, 1}, {64, 0}, {64, 1}, {-1, 1}, {1, -1}, {M - 5, 10}, {M, 1}, {M, M}, {5, M - 2}, {math.MinInt64, 0}} {
		f.Add(s[0], s[1])
	}
	const size = 64
	f.Fuzz(func(t *testing.T, off, n int64) {
		in := byterange.Within(off, n, size)
		ops := map[string]func(b *Buffer){
			"Written": func(b *Buffer) { b.Written(off, n) },
			"Commit":  func(b *Buffer) { b.Commit(off, n) },
			"Fail":    func(b *Buffer) { b.Fail(off, n, context.Canceled) },
			"section": func(b *Buffer) { b.section(off, n) },
			"Wait": func(b *Buffer) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				b.Wait(ctx, off, n)
			},
		}
		for name, op := range ops {
			b := New(size)
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				op(b)
				return false
			}()
			if panicked == in {
				t.Fatalf("%s(%d, %d) on %d bytes: panicked %v, in range %v", name, off, n, size, panicked, in)
			}
		}
		if !in {
			return
		}
		b := New(size)
		b.Commit(off, n)
		if !b.Written(off, n) || (n > 0 && off > 0 && b.Written(0, off+1)) {
			t.Fatalf("Commit(%d, %d) marked the wrong bytes", off, n)
		}
		s := b.section(off, n)
		if s.Remaining() != n {
			t.Fatalf("section(%d, %d).Remaining() = %d", off, n, s.Remaining())
		}
	})
}
