// Command zonalbench measures how fast zonalread reads objects compared
// with the usual ways of reading them, on in-process fake GCS servers shaped
// like real links, and writes the results as a markdown report
// (BENCHMARKS.md) and raw JSON.
//
// For each named link profile (standard: a regional bucket, tens of ms to
// first byte and a per-connection cap; zonal: a Rapid bucket, ~2 ms to first
// byte and a per-stream cap; both with an aggregate cap that is the
// physical limit of the link; tail: standard with every 50th request 10x
// slower to its first byte, for the random patterns only) it starts the shaped servers of
// internal/testserver, stores one object of random bytes, and reads it with
// every strategy under several access patterns:
//
//	sequential    1 MiB Read calls front to back
//	whole         the whole object at once
//	random-4KiB   random 4 KiB reads
//	random-1MiB   random 1 MiB reads
//	back-forward  1 MiB reads walking backward from the middle, then forward to the end
//	strided       Parquet-like: the footer, then 3 of 8 column chunks of each row group
//
// The strategies are one storage.Reader stream, gocloud NewRangeReader with
// fsspec's default cache (internal/baseline, 5 MiB readahead), and zonalread (gcsfs)
// with prefetch off and on, over HTTP ranged reads and gRPC multi-range
// downloaders (for the random patterns, also with hedged reads on); for strided, also gcsfs's vectored File.ReadRanges (the
// footer read alone, then every selected chunk in one call). Every run's bytes are checked against the object (sha256);
// a mismatch fails the program.
//
// `make bench` runs it on both profiles and writes BENCHMARKS.md at the
// repository root and every run's raw numbers to
// cmd/zonalbench/results.json; `make bench-short` runs -short into a
// temporary directory.
//
// Usage:
//
//	zonalbench [-profile standard|zonal|tail|all] [-runs 3] [-size 256MiB] [-short]
//	           [-out BENCHMARKS.md] [-json results.json] [-only REGEXP] [-cpuprofile FILE]
//	           [-grpc-conns N]
//
// -short reads a 32 MiB object once per row with fewer random reads, for CI
// (under a minute; no assertions on times). -only keeps the rows whose
// "pattern/strategy" matches; -cpuprofile writes a CPU profile of the timed
// part of the first run of the first row kept. -grpc-conns dials the MRD
// backend's gRPC client with N channels instead of gcsfs's default of one
// per downloader (Options.PoolSize).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/bytesize"
	"github.com/zonalread/zonalread/internal/testserver"
)

// profile is a named link shape.
type profile struct {
	Name, Desc string
	Shape      testserver.Shape
	// Patterns are the ids of the patterns run on it; nil means all.
	Patterns []string
}

// runs reports whether the profile runs pattern id.
func (p profile) runs(id string) bool {
	return p.Patterns == nil || slices.Contains(p.Patterns, id)
}

// The aggregate caps are chosen so that gcsfs's default Options.PoolSize
// and Options.Concurrency (8 each when the caps were chosen) could fill
// them: that many connections at the per-connection cap add up to twice
// the aggregate.
var profiles = []profile{
	{Name: "standard", Desc: "regional bucket seen from a VM",
		Shape: testserver.Shape{Latency: 30 * time.Millisecond, ConnBandwidth: 100 << 20, AggregateBandwidth: 400 << 20}},
	{Name: "zonal", Desc: "Rapid (zonal) bucket in the same zone",
		Shape: testserver.Shape{Latency: 2 * time.Millisecond, ConnBandwidth: 200 << 20, AggregateBandwidth: 800 << 20}},
	// standard with a tail: every 50th data request (2%) waits 10x as long
	// for its first byte. Only the random patterns, which hedging is for.
	{Name: "tail", Desc: "regional bucket with a tail: 2% of requests (every 50th) at 10x latency",
		Shape: testserver.Shape{Latency: 30 * time.Millisecond, ConnBandwidth: 100 << 20, AggregateBandwidth: 400 << 20,
			SlowEvery: 50, SlowFactor: 10},
		Patterns: []string{"random-4KiB", "random-1MiB"}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "zonalbench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "zonalbench:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

// config is the parsed command line.
type config struct {
	profiles   []profile
	runs       int
	seqRuns    int  // runs of the sequential rows
	warmup     bool // one untimed run before each row's runs
	size       int64
	short      bool
	out, json  string
	only       *regexp.Regexp
	cpuprofile string
	grpcConns  int
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("zonalbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prof := fs.String("profile", "all", "link profile: standard, zonal, tail or all")
	runs := fs.Int("runs", 3, "runs per row; the report shows medians")
	seqRuns := fs.Int("seq-runs", 5, "runs per sequential row (the size sweep, and how much its runs differ)")
	size := fs.String("size", "256MiB", "object size (bytes, or with KiB/MiB/GiB)")
	short := fs.Bool("short", false, "quick pass for CI: 32 MiB, 1 run, no warm-up run, fewer random reads")
	out := fs.String("out", "BENCHMARKS.md", "markdown report to write (\"\" for none)")
	jsonPath := fs.String("json", "", "raw results as JSON to write (\"\" for none)")
	only := fs.String("only", "", "keep rows whose pattern/strategy matches this regexp")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the first run of the first row kept")
	grpcConns := fs.Int("grpc-conns", 0, "gRPC channels of the MRD client (0: gcsfs's default, PoolSize)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c := &config{runs: *runs, seqRuns: *seqRuns, warmup: !*short, short: *short, out: *out, json: *jsonPath, cpuprofile: *cpuprofile, grpcConns: *grpcConns}
	if c.short && !set["runs"] {
		c.runs = 1
	}
	if c.short && !set["seq-runs"] {
		c.seqRuns = 1
	}
	if c.short && !set["size"] {
		*size = "32MiB"
	}
	var err error
	if c.size, err = bytesize.Parse(*size); err != nil || c.size < 64<<10 {
		return nil, usageError{fmt.Errorf("bad -size %q: want at least 64KiB", *size)}
	}
	if c.runs < 1 {
		return nil, usageError{fmt.Errorf("bad -runs %d", c.runs)}
	}
	if c.seqRuns < 1 {
		return nil, usageError{fmt.Errorf("bad -seq-runs %d", c.seqRuns)}
	}
	for _, p := range profiles {
		if *prof == "all" || *prof == p.Name {
			c.profiles = append(c.profiles, p)
		}
	}
	if len(c.profiles) == 0 {
		return nil, usageError{fmt.Errorf("unknown -profile %q (want standard, zonal, tail or all)", *prof)}
	}
	if *only != "" {
		if c.only, err = regexp.Compile(*only); err != nil {
			return nil, usageError{fmt.Errorf("bad -only: %w", err)}
		}
	}
	return c, nil
}

// run is the whole program: it parses args, benchmarks every profile and
// writes the reports. Progress goes to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	data := make([]byte, c.size)
	rand.NewChaCha8([32]byte{'z', 'o', 'n', 'a', 'l'}).Read(data)
	patterns := buildPatterns(data, c.short)
	dst := make([]byte, maxUsed(patterns))
	for i := range dst {
		dst[i] = 0 // fault the pages in now, not in the first timed run
	}
	rep := &report{Machine: machineInfo(), Size: c.size, Runs: c.runs, SeqRuns: c.seqRuns, Warmup: c.warmup, Short: c.short, GRPCConns: cmp.Or(c.grpcConns, gcsfs.DefaultPoolSize), Started: time.Now().UTC()}
	for _, p := range patterns {
		rep.Patterns = append(rep.Patterns, patternInfo{ID: p.id, Desc: p.desc, Reads: len(p.ops), Used: p.used, Sequential: p.sequential})
	}
	prof := &cpuProfiler{path: c.cpuprofile}
	defer prof.stop()
	for _, pr := range c.profiles {
		rep.Profiles = append(rep.Profiles, profileInfo(pr))
		rows, err := benchProfile(ctx, c, pr, patterns, dst, prof, stdout)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return fmt.Errorf("profile %s: %w", pr.Name, err)
		}
	}
	if err := prof.err(); err != nil {
		return err
	}
	rep.Elapsed = time.Since(rep.Started).Round(time.Second).String()
	if c.json != "" {
		if err := writeJSON(c.json, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", c.json)
	}
	if c.out != "" {
		if err := writeMarkdown(c.out, c.json, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", c.out)
	}
	return nil
}

// benchProfile runs every kept row of every pattern on one profile's
// servers.
func benchProfile(ctx context.Context, c *config, pr profile, patterns []*pattern, dst []byte, prof *cpuProfiler, stdout io.Writer) ([]rowResult, error) {
	e, err := startEnv(ctx, pr, patterns, c.grpcConns)
	if err != nil {
		return nil, err
	}
	var rows []rowResult
	for _, p := range patterns {
		if !pr.runs(p.id) {
			continue
		}
		for _, sid := range p.strategies {
			s := strategyByID(sid)
			if c.only != nil && !c.only.MatchString(p.id+"/"+s.id) {
				continue
			}
			row := rowResult{Profile: pr.Name, Pattern: p.id, Strategy: s.id, Label: s.label, Backend: s.backend,
				Reads: len(p.ops), Used: p.used}
			runs := c.runs
			if p.sequential {
				runs = c.seqRuns
			}
			if c.warmup {
				runs++ // the first is the warm-up
			}
			for i := range runs {
				if err := ctx.Err(); err != nil {
					return rows, errors.Join(err, e.close())
				}
				warm := c.warmup && i == 0
				runProf := prof
				if warm {
					runProf = &cpuProfiler{} // profile a timed run
				}
				r, err := measure(ctx, e, p, s, dst, runProf)
				if err != nil {
					return rows, errors.Join(fmt.Errorf("%s/%s run %d: %w", p.id, s.id, i+1, err), e.close())
				}
				if warm {
					row.Warmup = &r
					continue
				}
				row.Runs = append(row.Runs, r)
			}
			row.summarize(pr.Shape, p.sequential)
			rows = append(rows, row)
			fmt.Fprintf(stdout, "%-8s %-12s %-21s %-8s %8.1f MiB/s %5.1f%% of cap  fetched/used %7.2f  p50 %s  p99 %s  hedges %.0f\n",
				pr.Name, p.id, s.id, s.backend, row.MiBps, 100*row.RatioToCap, row.FetchedPerUsed, fmtDur(row.ReadP50), fmtDur(row.ReadP99), row.Hedges)
		}
	}
	return rows, e.close()
}
