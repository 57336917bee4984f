package main

import (
	"strconv"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/bytesize"
)

// minWindow is the smallest --block-size and --max-prefetch accepted.
const minWindow = 64 << 10

// readFlags are the flags of the commands that read object data (cat,
// bench): the gcsfs.Options knobs, the backend choice and --stats.
type readFlags struct {
	poolSize    int
	concurrency int
	blockSize   bytesize.Value
	maxPrefetch bytesize.Value
	zonal       string
	grpc        bool
	stats       bool
}

// register adds the flags to f; --block-size only with prefetch (cat
// reads with prefetch off, and there --max-prefetch is the size of its
// parallel windows).
func (r *readFlags) register(f *flagSet, prefetch bool) {
	smallest := bytesize.Value(minWindow)
	atLeast := "at least " + smallest.String()
	f.IntVar(&r.poolSize, "pool-size", 0, "`n` downloaders (streams) one open object may use at once "+orDefault(strconv.Itoa(gcsfs.DefaultPoolSize)))
	f.IntVar(&r.concurrency, "concurrency", 0, "split one logical read into `n` ranges "+orDefault(strconv.Itoa(gcsfs.DefaultConcurrency)))
	maxPrefetch := orDefault(sizeFlag(gcsfs.DefaultMaxPrefetch))
	if prefetch {
		f.Var(&r.blockSize, "block-size", "smallest prefetch window `size`, "+atLeast+" "+orDefault(sizeFlag(gcsfs.DefaultBlockSize)))
		f.Var(&r.maxPrefetch, "max-prefetch", "largest prefetch window `size`, "+atLeast+" "+maxPrefetch)
	} else {
		f.Var(&r.maxPrefetch, "max-prefetch", "`size` of the windows fetched in parallel, "+atLeast+" "+maxPrefetch)
	}
	f.StringVar(&r.zonal, "zonal", "auto", "read backend `mode`: auto (ask the bucket), on (gRPC multi-range downloaders), off (ranged reads);\na ?zonal= query parameter in the URL wins over this flag")
	f.BoolVar(&r.grpc, "grpc", false, "read object data over the gRPC API (bidi multi-range downloaders) whatever the bucket\nreports; the same as --zonal on (listing and metadata stay on the JSON API)")
	f.BoolVar(&r.stats, "stats", false, "print the read counters to stderr afterwards")
}

// orDefault says what a flag's 0 means: gcsfs's default, quoted from its
// constant.
func orDefault(value string) string { return "(0: gcsfs's default, " + value + ")" }

// sizeFlag writes n as a size flag is written: "64MiB".
func sizeFlag(n int64) string {
	v := bytesize.Value(n)
	return v.String()
}

// options validates the flags and returns the gcsfs options they ask for.
func (r *readFlags) options(f *flagSet) (gcsfs.Options, error) {
	var o gcsfs.Options
	if r.poolSize < 0 {
		return o, f.usageErr("--pool-size must not be negative, got %d", r.poolSize)
	}
	if r.concurrency < 0 {
		return o, f.usageErr("--concurrency must not be negative, got %d", r.concurrency)
	}
	// 0 means the gcsfs default; anything under minWindow would cut reads
	// into tiny requests (--max-prefetch 1 is one request per byte).
	if r.blockSize != 0 && r.blockSize < minWindow {
		return o, f.usageErr("--block-size must be at least %s (or 0 for the default), got %d bytes", bytesize.Format(minWindow), int64(r.blockSize))
	}
	if r.maxPrefetch != 0 && r.maxPrefetch < minWindow {
		return o, f.usageErr("--max-prefetch must be at least %s (or 0 for the default), got %d bytes", bytesize.Format(minWindow), int64(r.maxPrefetch))
	}
	z, ok := gcsfs.ParseZonal(r.zonal)
	if !ok {
		return o, f.usageErr("--zonal must be auto, on or off, got %q", r.zonal)
	}
	if r.grpc {
		if z == gcsfs.ZonalOff {
			return o, f.usageErr("--grpc and --zonal off cannot be used together: --grpc reads over gRPC multi-range downloaders")
		}
		z = gcsfs.ZonalOn
	}
	o.Zonal = z
	o.PoolSize = r.poolSize
	o.Concurrency = r.concurrency
	o.BlockSize = int64(r.blockSize)
	o.MaxPrefetch = int64(r.maxPrefetch)
	return o, nil
}
