package byterange

import (
	"math"
	"math/big"
	"testing"
)

// TestWithinAndEndExact checks the helpers against exact big-integer
// arithmetic on values at and around every edge of int64.
func TestWithinAndEndExact(t *testing.T) {
	const M = math.MaxInt64
	vals := []int64{math.MinInt64, math.MinInt64 + 1, -1 << 40, -10, -1, 0, 1, 2, 5, 10, 1 << 20, 1 << 40, M / 2, M/2 + 1, M - 10, M - 5, M - 1, M}
	for _, a := range vals {
		for _, b := range vals {
			sum := new(big.Int).Add(big.NewInt(a), big.NewInt(b))
			fits := sum.IsInt64()
			if got, ok := Add(a, b); ok != fits || (ok && got != sum.Int64()) {
				t.Errorf("Add(%d, %d) = %d, %v; want %v, fits %v", a, b, got, ok, sum, fits)
			}
			wantEnd := a >= 0 && b >= 0 && fits
			if got, ok := End(a, b); ok != wantEnd || (ok && got != a+b) {
				t.Errorf("End(%d, %d) = %d, %v; want ok %v", a, b, got, ok, wantEnd)
			}
			for _, size := range vals {
				want := a >= 0 && b >= 0 && size >= 0 && sum.Cmp(big.NewInt(size)) <= 0
				if got := Within(a, b, size); got != want {
					t.Errorf("Within(%d, %d, %d) = %v, want %v", a, b, size, got, want)
				}
			}
		}
	}
	// The case of issue 11: off+n wraps negative and passed "off+n > size".
	if Within(M-5, 10, 100) {
		t.Error("Within(MaxInt64-5, 10, 100) = true")
	}
}

func TestSplit(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		n       int64
		k       int
		minPart int64
		want    int
	}{{100, 8, 10, 8}, {100, 8, 30, 3}, {5, 8, 10, 1}, {8 * MiB, 8, MiB, 8}, {MiB + 1, 8, MiB, 1}, {0, 8, 10, 1}} {
		ps := Split(c.n, c.k, c.minPart)
		if len(ps) != c.want {
			t.Errorf("Split(%d,%d,%d) = %d parts, want %d", c.n, c.k, c.minPart, len(ps), c.want)
		}
		var off int64
		for _, p := range ps {
			if p.Off != off || (p.N < c.minPart && c.n >= c.minPart) {
				t.Errorf("Split(%d,%d,%d): bad part %+v", c.n, c.k, c.minPart, p)
			}
			off += p.N
		}
		if off != c.n {
			t.Errorf("Split(%d,%d,%d): parts cover %d", c.n, c.k, c.minPart, off)
		}
	}
}
