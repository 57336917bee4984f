package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/zonalread/zonalread/internal/procstat"
)

// Peak RSS per run: on Linux, writing "5" to /proc/self/clear_refs resets
// the peak (VmHWM) to the current RSS, so each run reads its own peak.
// Elsewhere the peak is the process's since it started (getrusage).

func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// currentRSS is VmRSS in bytes, or 0 if unknown.
func currentRSS() int64 { return procStatus("VmRSS:") }

// peakRSS is VmHWM in bytes, or getrusage's maxrss.
func peakRSS() int64 {
	if n := procStatus("VmHWM:"); n > 0 {
		return n
	}
	return procstat.MaxRSS()
}

// procStatus reads a "kB" field of /proc/self/status.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
