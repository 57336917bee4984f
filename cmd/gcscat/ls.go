package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/bytesize"
)

const lsDoc = `
Lists the objects and prefixes (shown with a trailing /) directly under a
bucket or prefix, sorted by name; an object URL lists that object. The
path may hold path.Match patterns: gs://b/logs/*.log, gs://b/*/2024-??.csv.

-l adds size, generation and update time, and a total; -R lists every
object below the prefix.`

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("ls", "[-l] [-R] URL...", lsDoc)
	long := f.Bool("l", false, "long listing: size, generation, updated")
	recursive := f.Bool("R", false, "list every object below the prefix")
	urls, err := parseFlagsAndURLs(f, args)
	if err != nil {
		return err
	}
	cache := newFSCache(gcsfs.Options{}, false)
	l := &lister{ctx: ctx, long: *long, recursive: *recursive}
	for _, u := range urls {
		if err = l.list(cache, u); err != nil {
			break
		}
	}
	l.flush(stdout)
	if err == nil && l.long {
		fmt.Fprintf(stdout, "TOTAL: %d objects, %d bytes (%s)\n", l.objects, l.bytes, bytesize.Format(l.bytes))
	}
	return errors.Join(err, cache.Close())
}

type lister struct {
	ctx             context.Context
	long, recursive bool
	rows            [][4]string // size, generation, updated, URL
	objects, bytes  int64
}

// flush prints the rows in aligned columns, sizes right-aligned.
func (l *lister) flush(w io.Writer) {
	var width [3]int
	for _, r := range l.rows {
		for i := range width {
			width[i] = max(width[i], len(r[i]))
		}
	}
	for _, r := range l.rows {
		if !l.long {
			fmt.Fprintln(w, r[3])
			continue
		}
		fmt.Fprintf(w, "%*s  %-*s  %-*s  %s\n", width[0], r[0], width[1], r[1], width[2], r[2], r[3])
	}
	l.rows = nil
}

func (l *lister) list(cache *fsCache, u objectURL) error {
	fsys, err := cache.get(l.ctx, u)
	if err != nil {
		return err
	}
	if strings.ContainsAny(u.name, `*?[\`) {
		matches, err := fsys.Glob(u.name)
		if err != nil {
			return fsys.notFound(l.ctx, u, err)
		}
		if len(matches) == 0 {
			if fsys.bucketMissing(l.ctx) {
				return errNoBucket(u)
			}
			return objErr(u.String(), errors.New("no objects match"))
		}
		for _, m := range matches {
			info, err := fsys.StatContext(l.ctx, m)
			if err != nil {
				return objErr(u.child(m), err)
			}
			if err := l.entry(fsys.FS, u, m, info); err != nil {
				return err
			}
		}
		return nil
	}
	entries, err := fsys.ReadDirContext(l.ctx, u.name)
	if err != nil {
		// An object lists as itself.
		info, serr := fsys.StatContext(l.ctx, u.name)
		if serr != nil || info.IsDir() {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(serr, fs.ErrNotExist) {
				if fsys.bucketMissing(l.ctx) {
					return errNoBucket(u)
				}
				return objErr(u.String(), errors.New("no such object or prefix"))
			}
			return objErr(u.String(), err)
		}
		l.print(u.String(), info)
		return nil
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return objErr(u.child(joinName(u.name, e.Name())), err)
		}
		if err := l.entry(fsys.FS, u, joinName(u.name, e.Name()), info); err != nil {
			return err
		}
	}
	return nil
}

// entry prints one object or, recursively with -R, the objects under a
// prefix.
func (l *lister) entry(fsys *gcsfs.FS, u objectURL, name string, info fs.FileInfo) error {
	if !info.IsDir() {
		l.print(u.child(name), info)
		return nil
	}
	if !l.recursive {
		l.print(u.child(name)+"/", info)
		return nil
	}
	return fs.WalkDir(fsys, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return objErr(u.child(p), err)
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return objErr(u.child(p), err)
		}
		l.print(u.child(p), info)
		return nil
	})
}

func (l *lister) print(name string, info fs.FileInfo) {
	if info.IsDir() {
		l.rows = append(l.rows, [4]string{"", "", "", name})
		return
	}
	l.objects++
	l.bytes += info.Size()
	l.rows = append(l.rows, [4]string{fmt.Sprint(info.Size()), generation(info), updated(info), name})
}
