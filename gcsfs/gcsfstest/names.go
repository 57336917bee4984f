package gcsfstest

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/zonalread/zonalread/internal/testkit"
)

// NameLimiter is implemented by a Harness whose store cannot hold every
// object name (a file:// bucket maps "a/./b" to "a/b", and cannot hold
// both "a" and "a/b"). Supports reports whether name can be written after
// the names in stored; names it does not support are not written, every
// other name must be.
type NameLimiter interface {
	Supports(name string, stored []string) bool
}

// HostileNames are object names that are not valid fs paths, collide with
// directories, or need escaping in URLs: the gcsfs package doc says what
// each becomes.
var HostileNames = []string{
	"./z", "dot/./e", "dir/", "x//y", "up/../f", "/lead", "trail/",
	"a", "a/b",
	"with space/s p.txt", "pct/100%.txt", "pct/%2F", "hash/#1", "query/what?x=1&y", "ünï/cødé ✓.txt",
	"plain/ok.txt", ".hidden/.f",
}

// VisibleFiles returns the names of put that a walk of gcsfs must find:
// valid fs paths other than "." with no object at any of their parent
// paths.
func VisibleFiles(put []string) []string {
	objects := map[string]bool{}
	for _, n := range put {
		objects[n] = true
	}
	var out []string
	for _, n := range put {
		if !fs.ValidPath(n) || n == "." {
			continue
		}
		shadowed := false
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			shadowed = shadowed || objects[d]
		}
		if !shadowed {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// testNames puts HostileNames in the bucket and checks the rules of the
// gcsfs package doc: fstest.TestFS passes, a walk terminates and finds
// exactly the visible files, listings hold no ".", "..", "" or "/".
func testNames(t *testing.T, h Harness) {
	var put []string
	for i, name := range HostileNames {
		if l, ok := h.(NameLimiter); ok && !l.Supports(name, put) {
			continue
		}
		put = append(put, name)
		data := testkit.RandomBytes(10+i, uint64(200+i))
		if strings.HasSuffix(name, "/") {
			data = nil // placeholders are empty
		}
		if err := h.Put(context.Background(), name, data); err != nil {
			t.Fatalf("put %q: %v", name, err)
		}
	}
	f := openFS(t, h, smallOpts())
	want := VisibleFiles(put)

	var walked []string
	steps := 0
	err := fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if steps++; steps > 1000 {
			return errors.New("fs.WalkDir does not terminate")
		}
		if p != "." && (d.Name() == "." || d.Name() == ".." || d.Name() == "" || strings.Contains(d.Name(), "/")) {
			t.Errorf("walk found entry %q at %q", d.Name(), p)
		}
		if !d.IsDir() {
			walked = append(walked, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(walked)
	if !slices.Equal(walked, want) {
		t.Fatalf("walk found files\n%q\nwant\n%q", walked, want)
	}
	if err := fstest.TestFS(f, want...); err != nil {
		t.Fatal(err)
	}
	for i, name := range HostileNames {
		if !slices.Contains(want, name) {
			continue
		}
		got, err := f.ReadFile(name)
		if err != nil {
			t.Fatalf("ReadFile(%q): %v", name, err)
		}
		testkit.SameBytes(t, name, got, testkit.RandomBytes(10+i, uint64(200+i)))
	}
	checkNameRules(t, f, put)
}

// checkNameRules checks that Stat, ReadDir and Open agree on the names the
// package doc singles out.
func checkNameRules(t *testing.T, f fs.FS, put []string) {
	has := func(n string) bool { return slices.Contains(put, n) }
	isDir := func(name string) {
		t.Helper()
		info, err := fs.Stat(f, name)
		if err != nil || !info.IsDir() {
			t.Errorf("Stat(%q) = %v, %v; want a directory", name, info, err)
			return
		}
		if _, err := fs.ReadDir(f, name); err != nil {
			t.Errorf("ReadDir(%q) = %v; want a directory", name, err)
		}
		d, err := f.Open(name)
		if err != nil {
			t.Errorf("Open(%q) = %v", name, err)
			return
		}
		if st, err := d.Stat(); err != nil || !st.IsDir() {
			t.Errorf("Open(%q).Stat() = %v, %v; want a directory", name, st, err)
		}
		d.Close()
	}
	if has("dir/") {
		isDir("dir")
		if entries, _ := fs.ReadDir(f, "dir"); len(entries) != 0 {
			t.Errorf("ReadDir(dir) of a placeholder = %v, want empty", entries)
		}
	}
	for _, d := range []string{"x", "up", "dot"} {
		for _, n := range put {
			if strings.HasPrefix(n, d+"/") {
				isDir(d)
				break
			}
		}
	}
	if has("a") && has("a/b") {
		info, err := fs.Stat(f, "a")
		if err != nil || info.IsDir() {
			t.Errorf("Stat(a) = %v, %v; want the file", info, err)
		}
		if _, err := fs.ReadDir(f, "a"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadDir(a) = %v; want not a directory", err)
		}
		if _, err := fs.Stat(f, "a/b"); err != nil {
			t.Errorf("Stat(a/b) = %v; a shadowed object is still reachable by name", err)
		}
	}
	for _, n := range put {
		if fs.ValidPath(n) {
			continue
		}
		if _, err := fs.Stat(f, n); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Stat(%q) = %v, want fs.ErrInvalid", n, err)
		}
		if _, err := f.Open(n); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want fs.ErrInvalid", n, err)
		}
	}
}
