package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/bytesize"
)

// generation is an object's generation for ls -l and stat, "-" when the
// bucket has none (file://).
func generation(info fs.FileInfo) string {
	if m, ok := info.Sys().(gcsfs.ObjectMeta); ok && m.Generation != 0 {
		return fmt.Sprint(m.Generation)
	}
	return "-"
}

// updated is an object's update time in UTC, "-" when unknown.
func updated(info fs.FileInfo) string {
	if info.ModTime().IsZero() {
		return "-"
	}
	return info.ModTime().UTC().Format(time.RFC3339)
}

const statDoc = `
Shows each object's size, generation and update time; a prefix shows as a
directory.`

func runStat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("stat", "URL...", statDoc)
	urls, err := parseFlagsAndURLs(f, args)
	if err != nil {
		return err
	}
	cache := newFSCache(gcsfs.Options{}, false)
	for _, u := range urls {
		if err = statOne(ctx, cache, u, stdout); err != nil {
			break
		}
	}
	return errors.Join(err, cache.Close())
}

func statOne(ctx context.Context, cache *fsCache, u objectURL, w io.Writer) error {
	fsys, err := cache.get(ctx, u)
	if err != nil {
		return err
	}
	info, err := fsys.StatContext(ctx, u.name)
	if err != nil {
		return fsys.notFound(ctx, u, err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	if info.IsDir() {
		name := u.String()
		if !strings.HasSuffix(name, "/") {
			name += "/"
		}
		fmt.Fprintf(tw, "%s:\n    Type:\tdirectory (prefix)\n", name)
		return tw.Flush()
	}
	fmt.Fprintf(tw, "%s:\n", u.String())
	fmt.Fprintf(tw, "    Name:\t%s\n", path.Clean(u.name))
	fmt.Fprintf(tw, "    Size:\t%d (%s)\n", info.Size(), bytesize.Format(info.Size()))
	fmt.Fprintf(tw, "    Generation:\t%s\n", generation(info))
	fmt.Fprintf(tw, "    Updated:\t%s\n", updated(info))
	return tw.Flush()
}
