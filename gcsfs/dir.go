package gcsfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// prefixOf is the listing prefix of directory name.
func prefixOf(name string) string {
	if name == "." {
		return ""
	}
	return name + "/"
}

func baseName(name string) string {
	if name == "." {
		return "."
	}
	return path.Base(name)
}

// Stat implements fs.StatFS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	return f.StatContext(context.Background(), name)
}

// StatContext is Stat bounded by ctx. An object is a file; a name with
// objects below it is a directory; "." always is.
func (f *FS) StatContext(ctx context.Context, name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("stat", name, fs.ErrInvalid)
	}
	if f.isClosed() {
		return nil, pathErr("stat", name, fs.ErrClosed)
	}
	if name == "." {
		return fileInfo{name: ".", dir: true}, nil
	}
	info, err := f.statBlob(ctx, name)
	if err == nil {
		return fileInfo{name: baseName(name), size: info.Size, mod: info.ModTime, gen: info.Generation}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, pathErr("stat", name, err)
	}
	isDir, derr := f.hasChildren(ctx, name)
	if derr != nil {
		return nil, pathErr("stat", name, derr)
	}
	if !isDir {
		return nil, pathErr("stat", name, err)
	}
	return fileInfo{name: baseName(name), dir: true}, nil
}

// hasChildren reports whether any object lies below name: then name is a
// directory, even when every object below it is left out of listings.
func (f *FS) hasChildren(ctx context.Context, name string) (bool, error) {
	it := f.bucket.List(&blob.ListOptions{Prefix: prefixOf(name), Delimiter: "/"})
	_, err := f.next(ctx, it, prefixOf(name))
	switch {
	case err == io.EOF:
		return f.hasPlaceholder(ctx, name)
	case err != nil:
		return false, listErr(err)
	}
	return true, nil
}

// hasPlaceholder reports whether the object "name/" exists. A listing
// normally shows it under name, but some stores (fileblob) keep it beside
// the directory, where a listing of name's prefix does not find it.
func (f *FS) hasPlaceholder(ctx context.Context, name string) (bool, error) {
	_, err := f.statBlob(ctx, name+"/")
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// listErr maps a listing error so errors.Is works with fs errors: a
// listing of a bucket that does not exist wraps fs.ErrNotExist.
func listErr(err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// validChild returns the entry name of key under prefix, or "" when the
// key cannot be an fs entry: an empty, "." or ".." element (keys like
// "x//y", "./z", "up/../f", or the "dir/" placeholder itself seen from
// inside dir), or a name that is not valid UTF-8.
func validChild(prefix, key string) string {
	rest := strings.TrimSuffix(strings.TrimPrefix(key, prefix), "/")
	if rest == "" || rest == "." || strings.Contains(rest, "/") || !fs.ValidPath(rest) {
		return ""
	}
	return rest
}

// ReadDir implements fs.ReadDirFS: the entries of directory name, sorted
// by name. A name with no objects below it does not exist; an object name
// is not a directory even when objects lie below it (see the package doc).
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	return f.ReadDirContext(context.Background(), name)
}

// ReadDirContext is ReadDir bounded by ctx.
func (f *FS) ReadDirContext(ctx context.Context, name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("readdir", name, fs.ErrInvalid)
	}
	if f.isClosed() {
		return nil, pathErr("readdir", name, fs.ErrClosed)
	}
	// An object of the same name shadows the directory: ask for it while
	// listing, so the check costs no extra round trip of latency.
	isObject := make(chan error, 1)
	if name != "." {
		go func() {
			_, err := f.statBlob(ctx, name)
			isObject <- err
		}()
	} else {
		isObject <- fs.ErrNotExist
	}
	entries, listed, err := f.list(ctx, prefixOf(name))
	serr := <-isObject
	switch {
	case serr == nil:
		return nil, pathErr("readdir", name, errNotDir)
	case !errors.Is(serr, fs.ErrNotExist):
		return nil, pathErr("readdir", name, serr)
	case err != nil:
		return nil, pathErr("readdir", name, err)
	case listed == 0 && name != ".":
		if ok, err := f.hasPlaceholder(ctx, name); !ok || err != nil {
			return nil, pathErr("readdir", name, cmp.Or(err, fs.ErrNotExist))
		}
	}
	return entries, nil
}

// list returns the entries directly under prefix, sorted by name, and how
// many keys and prefixes the listing held before names that cannot be fs
// entries were left out. A name that is both an object and a prefix is
// the object (a file shadows the directory of the same name).
func (f *FS) list(ctx context.Context, prefix string) ([]fs.DirEntry, int, error) {
	it := f.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var entries []fs.DirEntry
	index := map[string]int{}
	listed := 0
	for {
		obj, err := f.next(ctx, it, prefix)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, listed, listErr(err)
		}
		listed++
		child := validChild(prefix, obj.Key)
		if child == "" {
			continue
		}
		info := fileInfo{name: child, dir: obj.IsDir}
		if !obj.IsDir {
			info.size, info.mod = obj.Size, obj.ModTime
			var a storage.ObjectAttrs
			if obj.As(&a) {
				info.gen = a.Generation
			}
		}
		i, seen := index[child]
		switch {
		case !seen:
			index[child] = len(entries)
			entries = append(entries, fs.FileInfoToDirEntry(info))
		case !obj.IsDir:
			entries[i] = fs.FileInfoToDirEntry(info)
		}
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, listed, nil
}

// ReadFile implements fs.ReadFileFS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	return f.ReadFileContext(context.Background(), name)
}

// ReadFileContext reads a whole object: it allocates one buffer of the
// object's size and fetches Concurrency ranges into it in parallel, with no
// other copy of the data.
func (f *FS) ReadFileContext(ctx context.Context, name string) ([]byte, error) {
	file, err := f.openFile(ctx, name, false) // the window would not be used
	if err != nil {
		return nil, err
	}
	defer file.Close()
	buf := make([]byte, file.info.Size)
	if err := file.engine.ReadDirect(ctx, buf, 0); err != nil {
		return nil, file.wrap("read", err)
	}
	return buf, nil
}

// Glob implements fs.GlobFS with path.Match patterns, listing only the
// directories the pattern can reach. Unlike fs.Glob it does not hide a
// listing that failed (a server gone, stalled, or the FS closed): that
// error is returned.
func (f *FS) Glob(pattern string) ([]string, error) {
	g := &globFS{f: f}
	names, err := fs.Glob(g, pattern)
	if err == nil && g.err != nil {
		return nil, g.err
	}
	return names, err
}

// globFS hides FS's Glob method so fs.Glob does the walking with ReadDir,
// and keeps the first listing error fs.Glob would drop.
type globFS struct {
	f   *FS
	err error
}

func (g *globFS) Open(name string) (fs.File, error)     { return g.f.Open(name) }
func (g *globFS) Stat(name string) (fs.FileInfo, error) { return g.f.Stat(name) }
func (g *globFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := g.f.ReadDir(name)
	if err != nil && g.err == nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNotDir) {
		g.err = err
	}
	return entries, err
}

// dirFile is an open directory.
type dirFile struct {
	info    fileInfo
	entries []fs.DirEntry
	read    int
	closed  bool
}

func (f *FS) openDir(ctx context.Context, name string) (*dirFile, error) {
	entries, err := f.ReadDirContext(ctx, name)
	if err != nil {
		return nil, err
	}
	return &dirFile{info: fileInfo{name: baseName(name), dir: true}, entries: entries}, nil
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, pathErr("read", d.info.name, errors.New("is a directory"))
}

func (d *dirFile) Close() error {
	if d.closed {
		return pathErr("close", d.info.name, fs.ErrClosed)
	}
	d.closed = true
	return nil
}

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.read:]
	if n <= 0 {
		d.read = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.read += n
	return rest[:n], nil
}
