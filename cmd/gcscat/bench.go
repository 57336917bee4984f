package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"text/tabwriter"
	"time"

	"gocloud.dev/blob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/baseline"
	"github.com/zonalread/zonalread/internal/bytesize"
)

const benchDoc = `
Reads one object front to back with each strategy in turn and prints a
table: throughput, time to first byte, total time, bytes fetched from
storage per byte used, and whether the bytes match the first strategy's
(sha256). The strategies:

  one stream         one storage.Reader (gocloud NewReader) read to the end
  naive range reads  fsspec's default (readahead) cache: a read that misses
                     its one block fetches up to --readahead bytes past the
                     read's end with one ranged GET (a read that starts in
                     the block keeps its tail)
  prefetch engine    gcsfs File.Read in --read-size reads (sequential prefetch)
  parallel whole     gcsfs ReadFile: --concurrency ranges fetched in parallel
                     into one buffer (File.WriteTo windows over 1 GiB)

The first two read through the gocloud bucket (JSON/XML API); the last two
through the gcsfs backend (ranged reads, or gRPC multi-range downloaders
with --zonal on). Each path is warmed up with a 1-byte read first, so
connection setup is not counted, and neither is time spent hashing.`

// wholeMax is the largest object the parallel strategy reads into one
// buffer with ReadFile; bigger ones stream through WriteTo's windows.
const wholeMax = 1 << 30

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("bench", "[flags] URL", benchDoc)
	var rf readFlags
	rf.register(f, true)
	readSize := bytesize.Value(1 << 20)
	readahead := bytesize.Value(baseline.DefaultReadahead)
	f.Var(&readSize, "read-size", "`size` of each read of the sequential strategies")
	f.Var(&readahead, "readahead", "how far past a read that misses its cache the naive strategy fetches, in `size` (the default is fsspec's block size)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return f.usageErr("want exactly one URL, got %d", len(pos))
	}
	if readSize <= 0 {
		return f.usageErr("--read-size must be positive")
	}
	opts, err := rf.options(f)
	if err != nil {
		return err
	}
	u, err := parseURL(f, pos[0])
	if err != nil {
		return err
	}
	if u.name == "." {
		return badURL(f, pos[0], "names a bucket or directory, not an object")
	}
	cache := newFSCache(opts, true)
	err = bench(ctx, cache, u, int64(readSize), int64(readahead), stdout)
	if rf.stats && len(cache.order) > 0 {
		fsys := cache.order[0]
		printStats(stderr, fsys.label, fsys.Zonal(), fsys.Stats())
	}
	return errors.Join(err, cache.Close())
}

// benchResult is one strategy's row.
type benchResult struct {
	name    string
	bytes   int64
	elapsed time.Duration // without hashing
	ttfb    time.Duration
	fetched int64
	sum     []byte
	err     error
}

func bench(ctx context.Context, cache *fsCache, u objectURL, readSize, readahead int64, stdout io.Writer) error {
	fsys, err := cache.get(ctx, u)
	if err != nil {
		return err
	}
	info, err := fsys.StatContext(ctx, u.name)
	if err != nil {
		return objErr(u.String(), err)
	}
	if info.IsDir() {
		return objErr(u.String(), errors.New("is a prefix, not an object"))
	}
	size := info.Size()
	fmt.Fprintf(stdout, "bench %s: %d bytes (%s); gcsfs backend: %s\n\n", u, size, bytesize.Format(size), backendName(fsys.Zonal()))

	b, name := fsys.Bucket(), u.name
	if err := warmUp(ctx, fsys.FS, name, size); err != nil {
		return objErr(u.String(), err)
	}
	results := []benchResult{
		benchOneStream(ctx, b, name),
		benchNaive(ctx, b, name, size, readSize, readahead),
		benchPrefetch(ctx, fsys.FS, name, readSize),
		benchWhole(ctx, fsys.FS, name, size),
	}
	base := results[0]
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STRATEGY\tMB/s\tSPEED-UP\tFIRST BYTE\tTIME\tFETCHED/USED\tBYTES")
	var errs []error
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tFAILED\n", r.name)
			errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
			continue
		}
		check := "ok"
		switch {
		case r.bytes != size:
			check = fmt.Sprintf("MISMATCH (%d bytes)", r.bytes)
		case base.err == nil && string(r.sum) != string(base.sum):
			check = "MISMATCH (sha256)"
		}
		if check != "ok" {
			errs = append(errs, fmt.Errorf("%s: bytes differ from the object's", r.name))
		}
		speedup := "-"
		if base.err == nil && r.elapsed > 0 {
			speedup = fmt.Sprintf("%.2fx", base.elapsed.Seconds()/r.elapsed.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n", r.name, mbps(r.bytes, r.elapsed), speedup,
			shortDuration(r.ttfb), shortDuration(r.elapsed), ratio(r.fetched, r.bytes), check)
	}
	tw.Flush()
	if err := errors.Join(errs...); err != nil {
		return objErr(u.String(), err)
	}
	return nil
}

// warmUp reads one byte through the gocloud bucket and one through gcsfs,
// so that no strategy pays for dialing the connections the others reuse.
func warmUp(ctx context.Context, fsys *gcsfs.FS, name string, size int64) error {
	if size == 0 {
		return nil
	}
	r, err := fsys.Bucket().NewRangeReader(ctx, name, 0, 1, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	r.Close()
	if err != nil {
		return err
	}
	file, err := fsys.OpenContext(ctx, name)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = file.ReadAtContext(ctx, make([]byte, 1), 0)
	if err == io.EOF {
		err = nil
	}
	return err
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// sink hashes what a strategy reads and times it: the first byte, and the
// time spent hashing, which is taken out of the total.
type sink struct {
	start   time.Time
	h       hash.Hash
	n       int64
	ttfb    time.Duration
	hashing time.Duration
}

func newSink() *sink { return &sink{start: time.Now(), h: sha256.New()} }

func (s *sink) Write(p []byte) (int, error) {
	t := time.Now()
	if s.n == 0 && len(p) > 0 {
		s.ttfb = t.Sub(s.start)
	}
	s.h.Write(p)
	s.n += int64(len(p))
	s.hashing += time.Since(t)
	return len(p), nil
}

func (s *sink) result(name string, fetched int64, err error) benchResult {
	return benchResult{name: name, bytes: s.n, elapsed: time.Since(s.start) - s.hashing, ttfb: s.ttfb,
		fetched: fetched, sum: s.h.Sum(nil), err: err}
}

// benchOneStream reads the object with one storage.Reader.
func benchOneStream(ctx context.Context, b *blob.Bucket, name string) benchResult {
	s := newSink()
	r, err := b.NewReader(ctx, name, nil)
	if err != nil {
		return s.result("one stream", 0, err)
	}
	_, err = io.Copy(s, r)
	r.Close()
	return s.result("one stream", s.n, err)
}

// benchNaive reads readSize at a time through fsspec's default cache
// (baseline.Readahead).
func benchNaive(ctx context.Context, b *blob.Bucket, name string, size, readSize, readahead int64) benchResult {
	const label = "naive range reads"
	s := newSink()
	r := baseline.NewReadahead(b, name, size, readahead)
	buf := make([]byte, readSize)
	for off := int64(0); off < size; off += readSize {
		n, err := r.ReadAt(ctx, buf, off)
		s.Write(buf[:n])
		if err != nil && err != io.EOF {
			return s.result(label, r.Fetched(), err)
		}
	}
	return s.result(label, r.Fetched(), nil)
}

// benchPrefetch reads through gcsfs's prefetch engine.
func benchPrefetch(ctx context.Context, fsys *gcsfs.FS, name string, readSize int64) benchResult {
	const label = "prefetch engine"
	s := newSink()
	file, err := fsys.OpenContext(ctx, name)
	if err != nil {
		return s.result(label, 0, err)
	}
	defer file.Close()
	buf := make([]byte, readSize)
	for {
		k, err := file.ReadContext(ctx, buf)
		s.Write(buf[:k])
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.result(label, file.Stats().Fetched, err)
		}
	}
	return s.result(label, file.Stats().Fetched, nil)
}

// benchWhole reads the whole object with parallel ranges.
func benchWhole(ctx context.Context, fsys *gcsfs.FS, name string, size int64) benchResult {
	const label = "parallel whole object"
	before := fsys.Stats().Fetched
	s := newSink()
	if size <= wholeMax {
		data, err := fsys.ReadFileContext(ctx, name)
		// ReadFile hands over every byte at once: the first byte arrives
		// with the last.
		s.Write(data)
		return s.result(label, fsys.Stats().Fetched-before, err)
	}
	file, err := fsys.OpenContext(ctx, name)
	if err != nil {
		return s.result(label, 0, err)
	}
	_, err = file.WriteToContext(ctx, s)
	file.Close()
	return s.result(label, fsys.Stats().Fetched-before, err)
}

// shortDuration rounds d for a table: 3 significant digits.
func shortDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}
