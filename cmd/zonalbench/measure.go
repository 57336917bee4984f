package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/procstat"
	"github.com/zonalread/zonalread/internal/testserver"
)

// runResult is one run of one row. Times are in seconds, sizes in bytes.
type runResult struct {
	Seconds        float64   `json:"seconds"`         // open to last read returned
	FirstByte      float64   `json:"first_read_s"`    // open to first read returned
	ReadP50        float64   `json:"read_p50_s"`      // latency of one read call
	ReadP95        float64   `json:"read_p95_s"`      //
	ReadP99        float64   `json:"read_p99_s"`      //
	MiBps          float64   `json:"mib_per_s"`       // bytes used / Seconds
	ServerBytes    int64     `json:"server_bytes"`    // object bytes both endpoints sent
	ServerRequests int64     `json:"server_requests"` // data requests (HTTP GETs, gRPC ranges)
	Mallocs        uint64    `json:"mallocs"`         // whole process, server included
	AllocBytes     uint64    `json:"alloc_bytes"`     //
	CPUSeconds     float64   `json:"cpu_s"`           // user+system, whole process
	StartRSS       int64     `json:"start_rss"`       // VmRSS before the run
	PeakRSS        int64     `json:"peak_rss"`        // VmHWM during the run
	Library        *libStats `json:"library,omitempty"`
}

// libStats are gcsfs's own counters over the run.
type libStats struct {
	Asked, Fetched, Prefetched, Served, Wasted, Requests, Waits, Downloaders, Retries int64
	Hedges, HedgeWins                                                                 int64
	// HedgeDelaySeconds is the FS's hedge delay (gcsfs Stats.HedgeDelay)
	// at the run's end: not a difference.
	HedgeDelaySeconds float64 `json:",omitempty"`
}

// measure runs pattern p with strategy s once and checks the bytes.
//
// It collects garbage first, so a run starts with the heap its reader
// retains, but does not return the freed memory to the OS
// (debug.FreeOSMemory): a process reading file after file keeps its heap
// between them, and on this kind of machine (a microVM) every page handed
// back costs a fault of tens of microseconds when it is touched again
// (machine.FirstTouchMiBps), which made every run of a reader that
// allocates as it goes (gRPC receive buffers, ReadRanges results) pay for
// the bytes it read a second time.
func measure(ctx context.Context, e *env, p *pattern, s *strategy, dst []byte, prof *cpuProfiler) (runResult, error) {
	var r runResult
	runtime.GC()
	resetPeakRSS()
	r.StartRSS = currentRSS()
	e.srv.HTTP.ResetStats()
	e.srv.GRPC.ResetStats()
	// A fresh aggregate bucket, empty, so no run starts with the bytes the
	// link banked while idle since the last.
	e.srv.HTTP.SetShape(e.prof.Shape)
	e.srv.GRPC.SetShape(e.prof.Shape)
	var fsys *gcsfs.FS
	var lib0 gcsfs.Stats
	if s.fsys != nil {
		fsys = s.fsys(e)
		lib0 = fsys.Stats()
	}
	lat := make([]time.Duration, 0, len(p.ops))
	got := make([][]byte, 0, len(p.ops))
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := procstat.CPUTime()
	prof.start()

	t0 := time.Now()
	sess, err := s.open(ctx, e, p.object)
	if err != nil {
		prof.stop()
		return r, fmt.Errorf("open: %w", err)
	}
	if pl, ok := sess.(planner); ok {
		pl.plan(p.ops)
	}
	var pos int64
	for i, o := range p.ops {
		t := time.Now()
		b, err := sess.read(ctx, dst[pos:pos+o.n], o.off)
		if err != nil {
			prof.stop()
			return r, errors.Join(fmt.Errorf("read %d of %d (%d bytes at %d): %w", i+1, len(p.ops), o.n, o.off, err), sess.close())
		}
		lat = append(lat, time.Since(t))
		if i == 0 {
			r.FirstByte = time.Since(t0).Seconds()
		}
		got = append(got, b)
		pos += o.n
	}
	elapsed := time.Since(t0)

	prof.stop()
	r.CPUSeconds = (procstat.CPUTime() - cpu0).Seconds()
	runtime.ReadMemStats(&ms1)
	if err := sess.close(); err != nil {
		return r, fmt.Errorf("close: %w", err)
	}
	r.ServerBytes, r.ServerRequests = settledServerStats(e)
	r.PeakRSS = peakRSS()
	r.Seconds = elapsed.Seconds()
	r.MiBps = float64(p.used) / (1 << 20) / r.Seconds
	r.Mallocs = ms1.Mallocs - ms0.Mallocs
	r.AllocBytes = ms1.TotalAlloc - ms0.TotalAlloc
	slices.Sort(lat)
	r.ReadP50, r.ReadP95, r.ReadP99 = quantile(lat, 0.5).Seconds(), quantile(lat, 0.95).Seconds(), quantile(lat, 0.99).Seconds()
	if fsys != nil {
		d := fsys.Stats()
		r.Library = &libStats{
			Asked: d.Asked - lib0.Asked, Fetched: d.Fetched - lib0.Fetched, Prefetched: d.Prefetched - lib0.Prefetched,
			Served: d.Served - lib0.Served, Wasted: d.Wasted - lib0.Wasted, Requests: d.Requests - lib0.Requests,
			Waits: d.Waits - lib0.Waits, Downloaders: d.Downloaders - lib0.Downloaders, Retries: d.Retries - lib0.Retries,
			Hedges: d.Hedges - lib0.Hedges, HedgeWins: d.HedgeWins - lib0.HedgeWins,
			HedgeDelaySeconds: d.HedgeDelay.Seconds(),
		}
	}
	return r, verify(p, got)
}

// verify compares the sha256 of the bytes the reads returned with the
// object's; on a mismatch it names the first read that differs.
func verify(p *pattern, got [][]byte) error {
	data := p.data
	h := sha256.New()
	for _, b := range got {
		h.Write(b)
	}
	var sum [32]byte
	if h.Sum(sum[:0]); sum == p.sum {
		return nil
	}
	for i, o := range p.ops {
		if i >= len(got) || !bytes.Equal(got[i], data[o.off:o.off+o.n]) {
			return fmt.Errorf("BYTES MISMATCH: sha256 %x, want %x; read %d (%d bytes at offset %d) differs from the object", sum, p.sum, i+1, o.n, o.off)
		}
	}
	return fmt.Errorf("BYTES MISMATCH: sha256 %x, want %x", sum, p.sum)
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// settledServerStats returns the data bytes and requests both endpoints
// served, once their byte counter has stopped moving: responses the client
// abandoned may still be draining into socket buffers, and those bytes
// belong to this run.
func settledServerStats(e *env) (bytes, requests int64) {
	read := func() (int64, int64) {
		h, g := e.srv.HTTP.Stats(), e.srv.GRPC.Stats()
		return h.Bytes + g.Bytes, h.Requests + g.Requests
	}
	b, q := read()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		b2, q2 := read()
		if b2 == b && q2 == q {
			break
		}
		b, q = b2, q2
	}
	return b, q
}

// cpuProfiler profiles one timed section: the first one started after it
// is made, if it has a path.
type cpuProfiler struct {
	path    string
	f       *os.File
	done    bool
	lastErr error
}

func (p *cpuProfiler) start() {
	if p.path == "" || p.done || p.f != nil {
		return
	}
	f, err := os.Create(p.path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		p.lastErr, p.done = fmt.Errorf("cpu profile: %w", err), true
		return
	}
	p.f = f
}

func (p *cpuProfiler) stop() {
	if p.f == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := p.f.Close(); err != nil {
		p.lastErr = fmt.Errorf("cpu profile: %w", err)
	}
	p.f, p.done = nil, true
}

func (p *cpuProfiler) err() error {
	if p.path != "" && !p.done {
		return fmt.Errorf("cpu profile: no run matched -only")
	}
	return p.lastErr
}

// rowResult is one strategy on one pattern and profile: every run and the
// medians the report shows.
type rowResult struct {
	Profile  string `json:"profile"`
	Pattern  string `json:"pattern"`
	Strategy string `json:"strategy"`
	Label    string `json:"label"`
	Backend  string `json:"backend"`
	Reads    int    `json:"reads"`
	Used     int64  `json:"bytes_used"`
	Verified bool   `json:"verified"` // every run's bytes matched the object
	// Efficiency, for a sequential read of a whole object, is the ideal
	// time (idealSeconds) over the run's: the median over runs, the
	// lowest and highest run, and the warm-up's.
	Efficiency       float64 `json:"efficiency,omitempty"`
	EfficiencyMin    float64 `json:"efficiency_min,omitempty"`
	EfficiencyMax    float64 `json:"efficiency_max,omitempty"`
	WarmupEfficiency float64 `json:"warmup_efficiency,omitempty"`

	// Medians over runs.
	MiBps          float64 `json:"mib_per_s"`
	RatioToCap     float64 `json:"ratio_to_cap"` // MiBps / the profile's aggregate cap
	FirstByte      float64 `json:"first_read_s"`
	ReadP50        float64 `json:"read_p50_s"`
	ReadP95        float64 `json:"read_p95_s"`
	ReadP99        float64 `json:"read_p99_s"`
	Hedges         float64 `json:"hedges"`                  // second requests of hedged reads (gcsfs Stats.Hedges)
	HedgeDelay     float64 `json:"hedge_delay_s,omitempty"` // the FS's hedge delay at a run's end (gcsfs Stats.HedgeDelay)
	FetchedPerUsed float64 `json:"fetched_per_used"`        // server bytes / bytes used
	Requests       float64 `json:"server_requests"`
	AllocsPerMiB   float64 `json:"allocs_per_mib"`
	CPUCores       float64 `json:"cpu_cores"` // CPU seconds / wall seconds
	PeakRSS        float64 `json:"peak_rss"`
	RSSGrowth      float64 `json:"peak_rss_over_start"`

	Runs []runResult `json:"runs"`
	// Warmup is the untimed run before Runs (none in -short mode): the
	// row's first read of its object with that FS, after other rows' reads.
	Warmup *runResult `json:"warmup,omitempty"`
}

func (row *rowResult) summarize(shape testserver.Shape, sequential bool) {
	aggregate := shape.AggregateBandwidth
	med := func(f func(r runResult) float64) float64 {
		v := make([]float64, len(row.Runs))
		for i, r := range row.Runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	mib := float64(row.Used) / (1 << 20)
	row.Verified = true
	row.MiBps = med(func(r runResult) float64 { return r.MiBps })
	row.RatioToCap = row.MiBps / (float64(aggregate) / (1 << 20))
	row.FirstByte = med(func(r runResult) float64 { return r.FirstByte })
	row.ReadP50 = med(func(r runResult) float64 { return r.ReadP50 })
	row.ReadP95 = med(func(r runResult) float64 { return r.ReadP95 })
	row.ReadP99 = med(func(r runResult) float64 { return r.ReadP99 })
	row.Hedges = med(func(r runResult) float64 {
		if r.Library == nil {
			return 0
		}
		return float64(r.Library.Hedges)
	})
	row.HedgeDelay = med(func(r runResult) float64 {
		if r.Library == nil {
			return 0
		}
		return r.Library.HedgeDelaySeconds
	})
	row.FetchedPerUsed = med(func(r runResult) float64 { return float64(r.ServerBytes) / float64(row.Used) })
	row.Requests = med(func(r runResult) float64 { return float64(r.ServerRequests) })
	row.AllocsPerMiB = med(func(r runResult) float64 { return float64(r.Mallocs) / mib })
	row.CPUCores = med(func(r runResult) float64 { return r.CPUSeconds / r.Seconds })
	row.PeakRSS = med(func(r runResult) float64 { return float64(r.PeakRSS) })
	row.RSSGrowth = med(func(r runResult) float64 { return float64(max(0, r.PeakRSS-r.StartRSS)) })
	if !sequential {
		return
	}
	ideal := idealSeconds(shape, row.Used)
	eff := func(r runResult) float64 { return ideal / r.Seconds }
	row.Efficiency = med(eff)
	row.EfficiencyMin, row.EfficiencyMax = eff(row.Runs[0]), eff(row.Runs[0])
	for _, r := range row.Runs {
		row.EfficiencyMin, row.EfficiencyMax = min(row.EfficiencyMin, eff(r)), max(row.EfficiencyMax, eff(r))
	}
	if row.Warmup != nil {
		row.WarmupEfficiency = eff(*row.Warmup)
	}
}

// idealSeconds is the least time the link can take to deliver n bytes
// from an open: one round trip, then n bytes at the aggregate cap, less
// what the aggregate bucket banked during that round trip
// (testserver.Burst), which arrives at once.
func idealSeconds(shape testserver.Shape, n int64) float64 {
	bps := float64(shape.AggregateBandwidth)
	banked := bps * min(testserver.Burst, shape.Latency).Seconds()
	return shape.Latency.Seconds() + max(0, float64(n)-banked)/bps
}
