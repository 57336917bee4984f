package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/zonalread/zonalread/gcsfs"
)

const catDoc = `
Writes each object to stdout, byte for byte, or the same byte range of each.
The bytes are fetched in windows of --max-prefetch bytes, each split into
--concurrency ranges fetched in parallel, one window written while the next
fills (gcsfs File.WriteRangeContext), and nothing past the range is fetched.

Ranges: -r START-END (END inclusive), -r START- (to the end), -r -N (the
last N bytes), --head N, --tail N; they exclude each other. A START at or
past the end of a non-empty object is an error; an END, a suffix or a
--head/--tail past the end is clipped to the object.

A progress bar is drawn on stderr for reads of 8 MiB or more when stderr
is a terminal and stdout is not (cat > file); never otherwise.`

// progressMin is the smallest read that gets a progress bar.
const progressMin = 8 << 20

func runCat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("cat", "[flags] URL...", catDoc)
	var rf readFlags
	rf.register(f, false)
	rangeFlag := f.String("r", "", "byte `range`: START-END, START- or -N")
	head := f.Int64("head", 0, "write only the first `N` bytes")
	tail := f.Int64("tail", 0, "write only the last `N` bytes")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	var set []string
	for _, name := range []string{"-r", "--head", "--tail"} {
		if f.isSet(strings.TrimLeft(name, "-")) {
			set = append(set, name)
		}
	}
	if len(set) > 1 {
		return f.usageErr("%s cannot be used together: give one of -r, --head, --tail", strings.Join(set, " and "))
	}
	var br byteRange
	switch {
	case f.isSet("r"):
		if br, err = parseRange(*rangeFlag); err != nil {
			return f.usageErr("-r %q: %v", *rangeFlag, err)
		}
	case f.isSet("head"):
		if *head < 0 {
			return f.usageErr("--head must not be negative, got %d", *head)
		}
		br = byteRange{kind: rangeHead, n: *head}
	case f.isSet("tail"):
		if *tail < 0 {
			return f.usageErr("--tail must not be negative, got %d", *tail)
		}
		br = byteRange{kind: rangeSuffix, n: *tail}
	}
	opts, err := rf.options(f)
	if err != nil {
		return err
	}
	urls, err := parseURLs(f, pos)
	if err != nil {
		return err
	}
	for i, u := range urls {
		if u.name == "." {
			return badURL(f, pos[i], "names a bucket or directory, not an object")
		}
	}

	// cat reads each range once with File.WriteRangeContext, which fetches
	// exactly the range: there is nothing for the prefetcher to do.
	opts.DisablePrefetch = true
	cache := newFSCache(opts, true)
	err = catAll(ctx, cache, urls, br, stdout, stderr)
	if rf.stats {
		for _, fsys := range cache.order {
			printStats(stderr, fsys.label, fsys.Zonal(), fsys.Stats())
		}
	}
	return errors.Join(err, cache.Close())
}

func catAll(ctx context.Context, cache *fsCache, urls []objectURL, br byteRange, stdout, stderr io.Writer) error {
	for _, u := range urls {
		fsys, err := cache.get(ctx, u)
		if err != nil {
			return err
		}
		if err := catOne(ctx, fsys.FS, u, br, stdout, stderr); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if info, serr := fsys.StatContext(ctx, u.name); serr == nil && info.IsDir() {
					return objErr(u.String(), errIsDir)
				}
			}
			return fsys.notFound(ctx, u, err)
		}
	}
	return nil
}

func catOne(ctx context.Context, fsys *gcsfs.FS, u objectURL, br byteRange, stdout, stderr io.Writer) error {
	file, err := fsys.OpenContext(ctx, u.name)
	if err != nil {
		return err
	}
	defer file.Close()
	off, n, err := br.resolve(file.Size())
	if err != nil {
		return err
	}
	w, done := newProgress(stdout, stderr, n, u.String())
	// Windows of --max-prefetch bytes, each split into --concurrency
	// ranges fetched in parallel, one written while the next fills; nothing
	// past the range is fetched.
	written, err := file.WriteRangeContext(ctx, w, off, n)
	done()
	if ctx.Err() != nil {
		// Ctrl-C: say so, whatever the copy stopped on.
		return ctx.Err()
	}
	if err == nil && written != n {
		err = fmt.Errorf("wrote %d of %d bytes", written, n)
	}
	return err
}

type rangeKind int

const (
	rangeAll    rangeKind = iota
	rangeFrom             // START- or START-END
	rangeHead             // the first n bytes
	rangeSuffix           // the last n bytes
)

// byteRange is what part of an object cat writes.
type byteRange struct {
	kind   rangeKind
	start  int64
	end    int64 // inclusive; with hasEnd
	hasEnd bool
	n      int64
}

// parseRange parses -r's START-END, START- and -N.
func parseRange(s string) (byteRange, error) {
	first, last, ok := strings.Cut(s, "-")
	if !ok {
		return byteRange{}, errors.New("want START-END, START- or -N")
	}
	num := func(v string) (int64, error) {
		if v == "" || strings.TrimLeft(v, "0123456789") != "" {
			return 0, fmt.Errorf("%q is not a byte offset", v)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s is too large for a byte offset (the largest is %d)", v, int64(math.MaxInt64))
		}
		return n, nil
	}
	if first == "" {
		n, err := num(last)
		if err != nil {
			return byteRange{}, err
		}
		if n == 0 {
			return byteRange{}, errors.New("a suffix range needs N > 0")
		}
		return byteRange{kind: rangeSuffix, n: n}, nil
	}
	start, err := num(first)
	if err != nil {
		return byteRange{}, err
	}
	r := byteRange{kind: rangeFrom, start: start}
	if last == "" {
		return r, nil
	}
	if r.end, err = num(last); err != nil {
		return byteRange{}, err
	}
	if r.end < start {
		return byteRange{}, fmt.Errorf("END %d is before START %d", r.end, start)
	}
	r.hasEnd = true
	return r, nil
}

// resolve returns the offset and length of the range in an object of
// size bytes: START past the end is an error, everything else is clipped.
func (r byteRange) resolve(size int64) (off, n int64, err error) {
	switch r.kind {
	case rangeHead:
		return 0, min(r.n, size), nil
	case rangeSuffix:
		n = min(r.n, size)
		return size - n, n, nil
	case rangeFrom:
		if r.start >= size && (r.start > 0 || size > 0) {
			return 0, 0, fmt.Errorf("range start %d is past the end of the object (%d bytes)", r.start, size)
		}
		end := size - 1
		if r.hasEnd {
			end = min(r.end, end)
		}
		return r.start, max(0, end-r.start+1), nil
	}
	return 0, size, nil
}

// newProgress returns dst wrapped so that writes advance a progress bar on
// stderr, and the function that finishes the bar. The bar is drawn only
// when stderr is a terminal, dst is not (the bar would be drawn over the
// data, as curl's would) and the read is at least progressMin bytes;
// otherwise dst is returned as it is.
func newProgress(dst, stderr io.Writer, total int64, label string) (io.Writer, func()) {
	if total < progressMin || !isTerminal(stderr) || isTerminal(dst) {
		return dst, func() {}
	}
	return progressTo(dst, stderr, total, label)
}

// progressTo always draws the bar on out.
func progressTo(dst, out io.Writer, total int64, label string) (io.Writer, func()) {
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		// Drawn at 0% at once: this starts the clock, and the first
		// window of a parallel read takes a while.
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return io.MultiWriter(dst, bar), func() {
		bar.Finish()
		bar.Exit()
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
