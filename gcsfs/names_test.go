package gcsfs_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
)

// FuzzNames stores objects with arbitrary names (newline-separated in the
// input) and walks the FS: the walk terminates, never yields ".", "..", ""
// or a name with "/", finds exactly the visible files of the package doc's
// rules, and Stat agrees with the walk on every entry. The seed corpus runs
// in `make test`.
func FuzzNames(f *testing.F) {
	f.Add(strings.Join(gcsfstest.HostileNames, "\n"))
	for _, s := range []string{"./z", "dot/./e\ndot/f", "dir/\ndir/x", "x//y\nx/y", "up/../f", "a\na/b\na/b/c", "/\n//\n.", "..\n../a", "a/\na", "é\xff/x", "a/b/\na/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		names := strings.Split(input, "\n")
		if len(names) > 20 {
			names = names[:20]
		}
		ctx := context.Background()
		bucket := memblob.OpenBucket(nil)
		defer bucket.Close()
		var put []string
		for _, n := range names {
			if n == "" || slices.Contains(put, n) {
				continue
			}
			if err := bucket.WriteAll(ctx, n, []byte(n), nil); err != nil {
				continue // a name the store refuses
			}
			put = append(put, n)
		}
		fsys, err := gcsfs.New(ctx, bucket, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer fsys.Close()
		var walked []string
		steps := 0
		err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if steps++; steps > 200 {
				return errors.New("walk does not terminate")
			}
			if p != "." && (!fs.ValidPath(p) || d.Name() == "." || d.Name() == ".." || strings.Contains(d.Name(), "/")) {
				t.Fatalf("walk yielded %q (entry %q)", p, d.Name())
			}
			info, err := fsys.Stat(p)
			if err != nil || info.IsDir() != d.IsDir() {
				t.Fatalf("walk says %q is dir=%v; Stat = %v, %v", p, d.IsDir(), info, err)
			}
			if !d.IsDir() {
				walked = append(walked, p)
				got, err := fsys.ReadFile(p)
				if err != nil || !bytes.Equal(got, []byte(p)) {
					t.Fatalf("ReadFile(%q) = %q, %v", p, got, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(walked)
		if want := gcsfstest.VisibleFiles(put); !slices.Equal(walked, want) {
			t.Fatalf("objects %q: walk found %q, want %q", put, walked, want)
		}
	})
}
