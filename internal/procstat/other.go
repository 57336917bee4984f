//go:build !unix

package procstat

import "time"

// CPUTime is 0: the platform does not report it here.
func CPUTime() time.Duration { return 0 }

// MaxRSS is 0: the platform does not report it here.
func MaxRSS() int64 { return 0 }
