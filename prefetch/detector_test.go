package prefetch

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
)

type step struct {
	off, n int64
	want   decision
}

func runTrace(t *testing.T, d *detector, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := d.observe(s.off, s.n)
		if got != s.want {
			t.Fatalf("step %d: observe(%d, %d) = %+v, want %+v", i, s.off, s.n, got, s.want)
		}
	}
}

func seq(w int64) decision { return decision{sequential: true, window: w} }

func TestDetectorTraces(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
	}{
		{"sequential 1MiB reads: prefetch from the 3rd, window doubles to the cap", []step{
			{0, MiB, decision{}},
			{MiB, MiB, seq(0)},
			{2 * MiB, MiB, seq(MiB)},
			{3 * MiB, MiB, seq(2 * MiB)},
			{4 * MiB, MiB, seq(4 * MiB)},
			{5 * MiB, MiB, seq(8 * MiB)},
			{6 * MiB, MiB, seq(8 * MiB)}, // MaxPrefetch 8 MiB
		}},
		{"small reads start the window at BlockSize", []step{
			{0, 4 * KiB, decision{}},
			{4 * KiB, 4 * KiB, seq(0)},
			{8 * KiB, 4 * KiB, seq(256 * KiB)},
			{12 * KiB, 4 * KiB, seq(512 * KiB)},
		}},
		{"big reads start the window at the read size", []step{
			{0, 3 * MiB, decision{}},
			{3 * MiB, 3 * MiB, seq(0)},
			{6 * MiB, 3 * MiB, seq(3 * MiB)},
			{9 * MiB, 3 * MiB, seq(6 * MiB)},
		}},
		{"readahead cache: needed block and next one together must not prefetch", []step{
			{10 * MiB, MiB, decision{}},
			{11 * MiB, MiB, seq(0)}, // the parallel second read looks sequential: streak 2 only
			{40 * MiB, MiB, decision{reset: true}},
			{41 * MiB, MiB, seq(0)},
			{5 * MiB, MiB, decision{reset: true}},
			{6 * MiB, MiB, seq(0)},
		}},
		{"read(0) neither counts nor resets", []step{
			{0, MiB, decision{}},
			{MiB, 0, seq(0)},
			{99 * MiB, 0, decision{}}, // a zero read elsewhere does not reset either
			{MiB, MiB, seq(0)},
			{2 * MiB, 0, seq(0)},
			{2 * MiB, MiB, seq(MiB)},
			{3 * MiB, 0, seq(MiB)},
			{3 * MiB, MiB, seq(2 * MiB)},
		}},
		{"a seek resets streak and window; a new run ramps up again", []step{
			{0, MiB, decision{}},
			{MiB, MiB, seq(0)},
			{2 * MiB, MiB, seq(MiB)},
			{3 * MiB, MiB, seq(2 * MiB)},
			{100 * MiB, MiB, decision{reset: true}},
			{101 * MiB, MiB, seq(0)},
			{102 * MiB, MiB, seq(MiB)},
		}},
		{"backward read is not sequential", []step{
			{MiB, MiB, decision{}},
			{2 * MiB, MiB, seq(0)},
			{0, MiB, decision{reset: true}},
			{MiB, MiB, seq(0)},
		}},
		{"re-reading the same block is not sequential", []step{
			{0, MiB, decision{}},
			{0, MiB, decision{reset: true}},
			{0, MiB, decision{reset: true}},
		}},
		{"random 4KiB reads never prefetch", []step{
			{7 * MiB, 4 * KiB, decision{}},
			{3 * MiB, 4 * KiB, decision{reset: true}},
			{90 * MiB, 4 * KiB, decision{reset: true}},
			{12 * KiB, 4 * KiB, decision{reset: true}},
		}},
		{"first read at 0 is not sequential to anything", []step{
			{0, 0, decision{}},
			{0, MiB, decision{}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runTrace(t, newDetector(256*KiB, 8*MiB, 3), c.steps)
		})
	}
}

func TestDetectorMinStreakOne(t *testing.T) {
	runTrace(t, newDetector(MiB, 4*MiB, 1), []step{
		{0, MiB, decision{window: MiB}},
		{MiB, MiB, seq(2 * MiB)},
		{9 * MiB, MiB, decision{reset: true, window: MiB}},
	})
}

func TestDetectorRejectsBadLimits(t *testing.T) {
	for _, c := range [][3]int64{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("newDetector%v did not panic", c)
				}
			}()
			newDetector(c[0], c[1], int(c[2]))
		}()
	}
}

// TestDetectorFiveReads is the five-read run of the detector's doc: no
// prefetch on the first two reads, then a window from the block size,
// doubling.
func TestDetectorFiveReads(t *testing.T) {
	d := newDetector(1<<20, 8<<20, 3)
	var got []string
	for i := range int64(5) {
		got = append(got, fmt.Sprintf("%+v", d.observe(i<<20, 1<<20)))
	}
	want := []string{
		"{sequential:false reset:false window:0}",
		"{sequential:true reset:false window:0}",
		"{sequential:true reset:false window:1048576}",
		"{sequential:true reset:false window:2097152}",
		"{sequential:true reset:false window:4194304}",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("decisions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDetectorZeroValuePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("observe on a zero detector did not panic")
		}
	}()
	var d detector
	d.observe(0, 1)
}

// With zeroStarts, a stream's read at offset 0 starts the run at once with
// the first window, and the run goes on doubling; a read elsewhere still
// waits for the streak, and starts with the first window too; a ReadAt at
// 0 (a header) does not start a run.
func TestDetectorZeroStartsAndFirstWindow(t *testing.T) {
	d := newDetector(256*KiB, 8*MiB, 3).withStart(2*MiB, true)
	if got := d.observe(0, 4); got != (decision{}) {
		t.Fatalf("ReadAt at 0: %+v, want no window", got)
	}
	d = newDetector(256*KiB, 8*MiB, 3).withStart(2*MiB, true)
	streamTrace(t, d, []step{
		{0, 64 * KiB, decision{window: 2 * MiB}},
		{64 * KiB, 64 * KiB, seq(4 * MiB)},
		{128 * KiB, 64 * KiB, seq(8 * MiB)},
		{50 * MiB, MiB, decision{reset: true}}, // a seek elsewhere: no start
		{51 * MiB, MiB, seq(0)},
		{52 * MiB, MiB, seq(2 * MiB)},                        // the streak's start uses the first window
		{0, 4 * MiB, decision{reset: true, window: 4 * MiB}}, // back to 0: at least the read
	})
	// Clamped to [blockSize, maxPrefetch].
	if d := newDetector(256*KiB, 8*MiB, 3).withStart(64*MiB, true); d.firstWindow != 8*MiB {
		t.Errorf("first window %d, want the 8 MiB cap", d.firstWindow)
	}
	if d := newDetector(256*KiB, 8*MiB, 3).withStart(0, false); d.firstWindow != 256*KiB {
		t.Errorf("first window %d, want the 256 KiB block", d.firstWindow)
	}
}

// streamTrace is runTrace with every read a stream's.
func streamTrace(t *testing.T, d *detector, steps []step) {
	t.Helper()
	for i, s := range steps {
		if got := d.observeRead(s.off, s.n, true); got != s.want {
			t.Fatalf("step %d: observeRead(%d, %d, stream) = %+v, want %+v", i, s.off, s.n, got, s.want)
		}
	}
}
