package prefetch

import (
	"fmt"
	"testing"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
)

type step struct {
	off, n int64
	want   Decision
}

func runTrace(t *testing.T, d *Detector, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := d.Observe(s.off, s.n)
		if got != s.want {
			t.Fatalf("step %d: Observe(%d, %d) = %+v, want %+v", i, s.off, s.n, got, s.want)
		}
	}
}

func seq(w int64) Decision { return Decision{Sequential: true, Window: w} }

func TestDetectorTraces(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
	}{
		{"sequential 1MiB reads: prefetch from the 3rd, window doubles to the cap", []step{
			{0, MiB, Decision{}},
			{MiB, MiB, seq(0)},
			{2 * MiB, MiB, seq(MiB)},
			{3 * MiB, MiB, seq(2 * MiB)},
			{4 * MiB, MiB, seq(4 * MiB)},
			{5 * MiB, MiB, seq(8 * MiB)},
			{6 * MiB, MiB, seq(8 * MiB)}, // MaxPrefetch 8 MiB
		}},
		{"small reads start the window at BlockSize", []step{
			{0, 4 * KiB, Decision{}},
			{4 * KiB, 4 * KiB, seq(0)},
			{8 * KiB, 4 * KiB, seq(256 * KiB)},
			{12 * KiB, 4 * KiB, seq(512 * KiB)},
		}},
		{"big reads start the window at the read size", []step{
			{0, 3 * MiB, Decision{}},
			{3 * MiB, 3 * MiB, seq(0)},
			{6 * MiB, 3 * MiB, seq(3 * MiB)},
			{9 * MiB, 3 * MiB, seq(6 * MiB)},
		}},
		{"readahead cache: needed block and next one together must not prefetch", []step{
			{10 * MiB, MiB, Decision{}},
			{11 * MiB, MiB, seq(0)}, // the parallel second read looks sequential: streak 2 only
			{40 * MiB, MiB, Decision{Reset: true}},
			{41 * MiB, MiB, seq(0)},
			{5 * MiB, MiB, Decision{Reset: true}},
			{6 * MiB, MiB, seq(0)},
		}},
		{"read(0) neither counts nor resets", []step{
			{0, MiB, Decision{}},
			{MiB, 0, seq(0)},
			{99 * MiB, 0, Decision{}}, // a zero read elsewhere does not reset either
			{MiB, MiB, seq(0)},
			{2 * MiB, 0, seq(0)},
			{2 * MiB, MiB, seq(MiB)},
			{3 * MiB, 0, seq(MiB)},
			{3 * MiB, MiB, seq(2 * MiB)},
		}},
		{"a seek resets streak and window; a new run ramps up again", []step{
			{0, MiB, Decision{}},
			{MiB, MiB, seq(0)},
			{2 * MiB, MiB, seq(MiB)},
			{3 * MiB, MiB, seq(2 * MiB)},
			{100 * MiB, MiB, Decision{Reset: true}},
			{101 * MiB, MiB, seq(0)},
			{102 * MiB, MiB, seq(MiB)},
		}},
		{"backward read is not sequential", []step{
			{MiB, MiB, Decision{}},
			{2 * MiB, MiB, seq(0)},
			{0, MiB, Decision{Reset: true}},
			{MiB, MiB, seq(0)},
		}},
		{"re-reading the same block is not sequential", []step{
			{0, MiB, Decision{}},
			{0, MiB, Decision{Reset: true}},
			{0, MiB, Decision{Reset: true}},
		}},
		{"random 4KiB reads never prefetch", []step{
			{7 * MiB, 4 * KiB, Decision{}},
			{3 * MiB, 4 * KiB, Decision{Reset: true}},
			{90 * MiB, 4 * KiB, Decision{Reset: true}},
			{12 * KiB, 4 * KiB, Decision{Reset: true}},
		}},
		{"first read at 0 is not sequential to anything", []step{
			{0, 0, Decision{}},
			{0, MiB, Decision{}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runTrace(t, NewDetector(256*KiB, 8*MiB, 3), c.steps)
		})
	}
}

func TestDetectorMinStreakOne(t *testing.T) {
	runTrace(t, NewDetector(MiB, 4*MiB, 1), []step{
		{0, MiB, Decision{Window: MiB}},
		{MiB, MiB, seq(2 * MiB)},
		{9 * MiB, MiB, Decision{Reset: true, Window: MiB}},
	})
}

func TestDetectorRejectsBadLimits(t *testing.T) {
	for _, c := range [][3]int64{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewDetector%v did not panic", c)
				}
			}()
			NewDetector(c[0], c[1], int(c[2]))
		}()
	}
}

func ExampleDetector() {
	d := NewDetector(1<<20, 8<<20, 3)
	for i := range int64(5) {
		fmt.Printf("%+v\n", d.Observe(i<<20, 1<<20))
	}
	// Output:
	// {Sequential:false Reset:false Window:0}
	// {Sequential:true Reset:false Window:0}
	// {Sequential:true Reset:false Window:1048576}
	// {Sequential:true Reset:false Window:2097152}
	// {Sequential:true Reset:false Window:4194304}
}
