package defaults

import "testing"

type opts struct{ n int }

func TestOf(t *testing.T) {
	if got := Of[opts](nil); got != (opts{}) {
		t.Fatalf("Of(nil) = %+v", got)
	}
	o := &opts{n: 3}
	got := Of(o)
	got.n = 4
	if o.n != 3 {
		t.Fatal("Of returned the caller's options, not a copy")
	}
}

func TestPositive(t *testing.T) {
	for _, tc := range []struct{ v, def, want int64 }{{0, 8, 8}, {-1, 8, 8}, {1, 8, 1}, {1 << 62, 8, 1 << 62}} {
		if got := Positive(tc.v, tc.def); got != tc.want {
			t.Errorf("Positive(%d, %d) = %d, want %d", tc.v, tc.def, got, tc.want)
		}
	}
}
