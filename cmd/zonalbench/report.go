package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is everything a run produced; it is the JSON file as is.
type report struct {
	Started   time.Time     `json:"started"`
	Elapsed   string        `json:"elapsed"`
	Short     bool          `json:"short"`
	Size      int64         `json:"object_size"`
	Runs      int           `json:"runs_per_row"`
	SeqRuns   int           `json:"runs_per_sequential_row"`
	Warmup    bool          `json:"warmup_run"`    // one untimed run before each row's runs
	GRPCConns int           `json:"grpc_channels"` // of the MRD backend's client (-grpc-conns, else gcsfs's PoolSize)
	Machine   machine       `json:"machine"`
	Profiles  []profileJSON `json:"profiles"`
	Patterns  []patternInfo `json:"patterns"`
	Rows      []rowResult   `json:"rows"`
}

type machine struct {
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Memory     int64  `json:"memory_bytes"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
	// FirstTouchMiBps is how fast the process faults in memory it has
	// never touched (or handed back to the OS): 64 MiB allocated afresh,
	// one write per page.
	FirstTouchMiBps float64 `json:"first_touch_mib_per_s"`
}

type profileJSON struct {
	Name          string   `json:"name"`
	Desc          string   `json:"description"`
	LatencyMs     float64  `json:"latency_ms"`
	ConnMiBps     float64  `json:"conn_mib_per_s"`
	AggregateMiBs float64  `json:"aggregate_mib_per_s"`
	SlowEvery     int      `json:"slow_every,omitempty"`  // every n-th data request is slow
	SlowFactor    int      `json:"slow_factor,omitempty"` // by this factor of the latency
	Patterns      []string `json:"patterns,omitempty"`    // run on it; none: all
}

type patternInfo struct {
	ID         string `json:"id"`
	Desc       string `json:"description"`
	Reads      int    `json:"reads"`
	Used       int64  `json:"bytes_used"`
	Sequential bool   `json:"sequential,omitempty"` // a front-to-back read of a whole object
}

func profileInfo(p profile) profileJSON {
	return profileJSON{Name: p.Name, Desc: p.Desc, LatencyMs: float64(p.Shape.Latency) / float64(time.Millisecond),
		ConnMiBps: float64(p.Shape.ConnBandwidth) / (1 << 20), AggregateMiBs: float64(p.Shape.AggregateBandwidth) / (1 << 20),
		SlowEvery: p.Shape.SlowEvery, SlowFactor: p.Shape.SlowFactor, Patterns: p.Patterns}
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, CPU: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.FirstTouchMiBps = firstTouch()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.Memory = kb << 10
		}
	}
	return m
}

// firstTouch is how fast the process faults in fresh memory, in MiB/s:
// 64 MiB allocated afresh, one byte written per 4 KiB page.
func firstTouch() float64 {
	const n = 64 << 20
	t := time.Now()
	b := make([]byte, n)
	for i := 0; i < n; i += 4 << 10 {
		b[i] = 1
	}
	d := time.Since(t)
	runtime.KeepAlive(b)
	return n / (1 << 20) / d.Seconds()
}

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Hand-written notes between these markers survive a rewrite of the
// report.
const (
	notesBegin   = "<!-- notes:begin (kept when the report is regenerated) -->"
	notesEnd     = "<!-- notes:end -->"
	defaultNotes = "(No notes yet.)"
	// target is the share of the link cap the sequential prefetch read over
	// HTTP should reach on the standard profile.
	target = 0.70
)

// keptNotes returns the notes block of an existing report, if any.
func keptNotes(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return defaultNotes
	}
	_, rest, ok := strings.Cut(string(b), notesBegin)
	if !ok {
		return defaultNotes
	}
	notes, _, ok := strings.Cut(rest, notesEnd)
	if !ok {
		return defaultNotes
	}
	return strings.TrimSpace(notes)
}

func writeMarkdown(path, jsonPath string, rep *report) error {
	var w bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	mode := "full"
	if rep.Short {
		mode = "short (-short: smaller object, fewer reads, no timing claims)"
	}
	p("# Benchmarks\n\n")
	p("Generated by `cmd/zonalbench` (`make bench`) on %s in %s; mode: %s.", rep.Started.Format("2006-01-02 15:04 MST"), rep.Elapsed, mode)
	if jsonPath != "" {
		p(" Raw results (every run): `%s`.", filepath.ToSlash(jsonPath))
	}
	p(" One row, with a CPU profile: `go run ./cmd/zonalbench -profile standard -runs 1 -out '' -only '^sequential/zonalread-http$' -cpuprofile cpu.out`, then `go tool pprof -top cpu.out`.\n\n")
	m := rep.Machine
	p("**Machine:** %s, %d logical CPUs (GOMAXPROCS %d), %.1f GiB RAM, Linux %s, %s %s. ", m.CPU, m.CPUs, m.GOMAXPROCS,
		float64(m.Memory)/(1<<30), m.Kernel, m.Go, m.Platform)
	p("The fake servers run in the same process as the readers, so they share these CPUs. "+
		"Memory the process has not touched before costs a page fault per 4 KiB page when first written: %.0f MiB/s here "+
		"(a microVM; a run does not hand its freed heap back to the OS, so only memory a reader has never had costs this).\n\n", m.FirstTouchMiBps)
	warm := ""
	if rep.Warmup {
		warm = ", after one untimed warm-up run (the row's first read of its object with that FS)"
	}
	p("**Object:** %s of random bytes (the size sweep reads two smaller ones), stored once per profile; every strategy reads the same object with the same reads. "+
		"Each row is the median of %d runs (sequential rows: %d)%s; every run's bytes are checked against the object (sha256). "+
		"The MRD backend's gRPC client uses %d gRPC channel(s), i.e. HTTP/2 connections (-grpc-conns).\n\n", human(rep.Size), rep.Runs, rep.SeqRuns, warm, rep.GRPCConns)

	p("## Link profiles\n\n")
	p("| profile | what it models | first byte | per connection / stream | aggregate cap (the physical limit) |\n|---|---|---:|---:|---:|\n")
	for _, pr := range rep.Profiles {
		first := fmt.Sprintf("%g ms", pr.LatencyMs)
		if pr.SlowEvery > 0 {
			first += fmt.Sprintf("; every %d%s data request: %g ms", pr.SlowEvery, ordinalSuffix(pr.SlowEvery), pr.LatencyMs*float64(max(pr.SlowFactor, 1)))
		}
		p("| `%s` | %s | %s | %g MiB/s | %g MiB/s |\n", pr.Name, pr.Desc, first, pr.ConnMiBps, pr.AggregateMiBs)
	}
	p("\nThe latency is added before the first byte of every HTTP response (data and metadata) and of every gRPC stream and read range. " +
		"The default gcsfs options (8 downloaders, 8 parts per read) could open 8 connections, twice the aggregate cap. " +
		"A profile with a tail runs only the random patterns.\n\n")

	writeTarget(&w, rep)
	writeSweep(&w, rep)
	writeTail(&w, rep)
	for _, pr := range rep.Profiles {
		p("## Results: `%s`\n\n", pr.Name)
		p("| pattern | strategy | backend | MiB/s | of cap | first read | read p50 / p95 / p99 | fetched / used | requests | allocs / MiB | CPU cores | peak RSS MiB (+run) |\n")
		p("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rep.Rows {
			if r.Profile != pr.Name {
				continue
			}
			p("| %s | %s | %s | %s | %.0f%% | %s | %s / %s / %s | %.2f | %s | %.0f | %.2f | %.0f (+%.0f) |\n",
				r.Pattern, r.Label, r.Backend, throughput(r), 100*r.RatioToCap, fmtDur(r.FirstByte), fmtDur(r.ReadP50), fmtDur(r.ReadP95), fmtDur(r.ReadP99),
				r.FetchedPerUsed, requests(r), r.AllocsPerMiB, r.CPUCores, r.PeakRSS/(1<<20), r.RSSGrowth/(1<<20))
		}
		p("\n")
	}

	p("## Patterns\n\n")
	for _, pt := range rep.Patterns {
		reads := "reads"
		if pt.Reads == 1 {
			reads = "read"
		}
		p("- `%s`: %s — %d %s, %s used.\n", pt.ID, pt.Desc, pt.Reads, reads, human(pt.Used))
	}
	p("\n## Columns\n\n")
	w.WriteString(`- **MiB/s**: bytes the reads returned / wall time from opening the object to the last read returning (hashing excluded). Median of runs, (lowest–highest) run in brackets.
- **of cap**: MiB/s over the profile's aggregate cap. Only the sequential and whole-object rows can approach it; random rows are bound by latency. The shaper's token buckets hold up to 20 ms of data (per connection or stream, and on the aggregate) and start empty, the aggregate one again at each run; a bucket refills while its link idles (waiting out a first byte) and sends that at once, so a run can show a little over 100%.
- **first read**: open to the first read returning (the open's metadata round trip included; for ` + "`whole`" + ` it is the whole read).
- **read p50 / p95 / p99**: latency of one read call (nearest rank within a run, median over runs; with 64 reads or fewer the p99 is a run's slowest read).
- **fetched / used**: object bytes the servers sent (testserver Endpoint.Stats().Bytes, HTTP + gRPC, counted after the run settles) / bytes the reads returned. Bytes pushed into socket buffers of an abandoned response count as fetched.
- **requests**: data requests the servers saw (HTTP object GETs, gRPC read ranges), hedges included; (+N hedges) is how many of them were second requests of hedged reads (gcsfs Stats.Hedges).
- **allocs / MiB**: runtime.MemStats.Mallocs over the timed part / MiB used. It counts the whole process, **the in-process servers' allocations included**.
- **CPU cores**: process CPU time (getrusage, user + system) / wall time, servers included; 2 is everything this machine has.
- **peak RSS**: VmHWM of the process during the run (reset before each run through /proc/self/clear_refs); (+run) is the peak over the RSS at the start of the run. The process keeps the heap it freed between runs (no debug.FreeOSMemory), so (+run) is 0 unless a run needs more memory than every earlier one did. The baseline holds the object three times (the fake's store, the gRPC fake's copy, the benchmark's source), the size sweep's objects likewise, plus the benchmark's destination buffer.

`)
	p("Strategies: **one storage.Reader stream** reads from the offset to the end and is reopened when a read is not where the last ended; " +
		"**gocloud NewRangeReader + 5 MiB readahead** is fsspec's default cache (internal/baseline: a one-block cache; a read it misses fetches up to 5 MiB past the read's end " +
		"with one ranged read, a read that starts in the block keeps the block's tail); **zonalread** is gcsfs.File used as an io.ReadSeeker (Seek when not contiguous, then Read) " +
		"with the default options, prefetch off or on, over ranged HTTP GETs or gRPC multi-range downloaders; **hedged reads** is the same with Options.Hedge on " +
		"(a random read with no first byte after the p95 of the FS's recent times to first byte sends a second request and takes whichever answers first; " +
		"its FS made 16 untimed reads on the link first, so its p95 is known); **ReadFile** is gcsfs.FS.ReadFile.\n\n")
	p("## Notes\n\n%s\n%s\n%s\n", notesBegin, keptNotes(path), notesEnd)
	return os.WriteFile(path, w.Bytes(), 0o644)
}

// writeTarget states whether the sequential prefetch read over HTTP on the
// standard profile reached the target share of the cap.
func writeTarget(w *bytes.Buffer, rep *report) {
	for _, r := range rep.Rows {
		if r.Profile != "standard" || r.Pattern != "sequential" || r.Strategy != "zonalread-http" {
			continue
		}
		verdict := "**met**"
		if r.RatioToCap < target {
			verdict = "**missed** — see Notes for what limits it"
		}
		if rep.Short {
			verdict += " (short mode: too small an object to judge)"
		}
		fmt.Fprintf(w, "**Target:** the sequential read of zonalread with prefetch (HTTP) on `standard` reached %.1f MiB/s, "+
			"%.0f%% of the aggregate cap (target: at least %.0f%%): %s.\n\n", r.MiBps, 100*r.RatioToCap, 100*target, verdict)
	}
}

// writeSweep tabulates the efficiency of gcsfs's sequential reads by
// object size, profile and backend.
func writeSweep(w *bytes.Buffer, rep *report) {
	type key struct{ profile, pattern, strategy string }
	rows := map[key]rowResult{}
	var sizes []patternInfo
	for _, pt := range rep.Patterns {
		if pt.Sequential {
			sizes = append(sizes, pt)
		}
	}
	slices.SortFunc(sizes, func(a, b patternInfo) int { return cmp.Compare(a.Used, b.Used) })
	for _, r := range rep.Rows {
		rows[key{r.Profile, r.Pattern, r.Strategy}] = r
	}
	fmt.Fprintf(w, "## Sequential efficiency by object size\n\n"+
		"Efficiency = ideal time / time from open to the last read; target at least 0.90. The ideal is one round trip, then the size at the aggregate cap, "+
		"less what the shaper's aggregate bucket banked during that round trip (min(20 ms, first byte) of data, which it then sends at once): "+
		"stricter than one round trip + size / cap, which a 16 MiB read on `standard` beat by 1.3x. "+
		"Median of %d runs (lowest–highest); *warm-up* is the row's untimed first run.\n\n", rep.SeqRuns)
	fmt.Fprintf(w, "| size | profile | zonalread HTTP | zonalread gRPC MRD |\n|---|---|---:|---:|\n")
	for _, pt := range sizes {
		for _, pr := range rep.Profiles {
			cells := []string{}
			for _, sid := range sweepStrategies {
				r, ok := rows[key{pr.Name, pt.ID, sid}]
				if !ok {
					cells = append(cells, "-")
					continue
				}
				c := fmt.Sprintf("%.2f (%.2f–%.2f)", r.Efficiency, r.EfficiencyMin, r.EfficiencyMax)
				if r.Warmup != nil {
					c += fmt.Sprintf("; warm-up %.2f", r.WarmupEfficiency)
				}
				cells = append(cells, c)
			}
			if cells[0] == "-" && cells[1] == "-" {
				continue
			}
			fmt.Fprintf(w, "| %s | `%s` | %s | %s |\n", human(pt.Used), pr.Name, cells[0], cells[1])
		}
	}
	fmt.Fprintf(w, "\n")
}

// writeTail states, for the random-4KiB rows of a profile with a tail,
// how the p99 compares with the p50 with hedged reads and without.
func writeTail(w *bytes.Buffer, rep *report) {
	for _, pr := range rep.Profiles {
		if pr.SlowEvery == 0 {
			continue
		}
		for _, r := range rep.Rows {
			if r.Profile != pr.Name || r.Pattern != "random-4KiB" || !strings.HasPrefix(r.Strategy, "zonalread-") {
				continue
			}
			fmt.Fprintf(w, "**Tail (`%s`, random-4KiB, %s, %s):** p50 %s, p99 %s (%.2fx the p50), fetched/used %.2f, hedges %.0f",
				pr.Name, r.Backend, r.Label, fmtDur(r.ReadP50), fmtDur(r.ReadP99), r.ReadP99/r.ReadP50, r.FetchedPerUsed, r.Hedges)
			if r.HedgeDelay > 0 {
				// A hedged read ends no sooner than the delay plus its
				// hedge's own time: the floor of the p99.
				fmt.Fprintf(w, "; hedge delay %s (the FS's p95 of recent times to first byte), so the p99 is %.2fx (hedge delay + p50)",
					fmtDur(r.HedgeDelay), r.ReadP99/(r.HedgeDelay+r.ReadP50))
			}
			fmt.Fprintf(w, ".\n\n")
		}
	}
}

// requests is the row's server requests, with its hedges when it had any.
func requests(r rowResult) string {
	if r.Hedges > 0 {
		return fmt.Sprintf("%.0f (+%.0f hedges)", r.Requests, r.Hedges)
	}
	return fmt.Sprintf("%.0f", r.Requests)
}

// ordinalSuffix is "st", "nd", "rd" or "th" for n.
func ordinalSuffix(n int) string {
	if n%100 >= 11 && n%100 <= 13 {
		return "th"
	}
	switch n % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

// throughput is the median MiB/s, with the range over runs when there are
// several.
func throughput(r rowResult) string {
	if len(r.Runs) < 2 {
		return fmt.Sprintf("%.1f", r.MiBps)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range r.Runs {
		lo, hi = min(lo, x.MiBps), max(hi, x.MiBps)
	}
	if hi < 10 {
		return fmt.Sprintf("%.2f (%.2f–%.2f)", r.MiBps, lo, hi)
	}
	return fmt.Sprintf("%.1f (%.0f–%.0f)", r.MiBps, lo, hi)
}

// fmtDur formats seconds for the table.
func fmtDur(s float64) string {
	switch {
	case s <= 0 || math.IsNaN(s):
		return "-"
	case s < 0.001:
		return fmt.Sprintf("%.0f µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1f ms", s*1e3)
	}
	return fmt.Sprintf("%.2f s", s)
}
