package procstat

import (
	"runtime"
	"testing"
)

// Spinning the CPU moves CPUTime forward, and the process has a resident
// peak, where the platform reports them.
func TestReports(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("not reported on", runtime.GOOS)
	}
	before := CPUTime()
	for CPUTime() == before {
		for i := range 1_000_000 {
			sink += i
		}
	}
	if CPUTime() <= before {
		t.Fatalf("CPUTime did not move: %v", before)
	}
	if MaxRSS() <= 0 {
		t.Fatalf("MaxRSS %d", MaxRSS())
	}
}

// sink keeps the spin loop from being optimised away.
var sink int
