package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

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
