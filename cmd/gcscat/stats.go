package main

import (
	"fmt"
	"io"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/bytesize"
)

// ratio formats a/b, or "-" when b is 0.
func ratio(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// backendName names the read backend of an FS for people.
func backendName(zonal bool) string {
	if zonal {
		return "gRPC multi-range downloaders"
	}
	return "ranged reads"
}

// printStats writes an FS's counters as one compact block.
func printStats(w io.Writer, label string, zonal bool, s gcsfs.Stats) {
	fmt.Fprintf(w, "stats %s (%s):\n", label, backendName(zonal))
	fmt.Fprintf(w, "  files %d  asked %s  fetched %s (%s per byte asked)  requests %d\n",
		s.Files, bytesize.Format(s.Asked), bytesize.Format(s.Fetched), ratio(s.Fetched, s.Asked), s.Requests)
	fmt.Fprintf(w, "  prefetched %s  served from prefetch %s  wasted %s  waits %d\n",
		bytesize.Format(s.Prefetched), bytesize.Format(s.Served), bytesize.Format(s.Wasted), s.Waits)
	fmt.Fprintf(w, "  downloaders %d (replaced %d)  retries %d  buffers peak %s of %s\n",
		s.Downloaders, s.Replaced, s.Retries, bytesize.Format(s.BufferHigh), bytesize.Format(s.BufferBudget))
}
