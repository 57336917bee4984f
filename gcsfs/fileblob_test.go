package gcsfs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocloud.dev/blob/fileblob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
	"github.com/zonalread/zonalread/internal/testkit"
)

// fileHarness is a file:// bucket in a temporary directory.
type fileHarness struct{ memHarness }

// Supports implements gcsfstest.NameLimiter: a file system resolves "."
// elements and a leading "/", so "a/./b" and "/a" would be stored as "a/b"
// and "a", and a file cannot also be a directory. (fileblob escapes "//",
// "../" and a trailing "/", so those names round-trip.)
func (fileHarness) Supports(name string, stored []string) bool {
	if strings.Contains("/"+name+"/", "/./") || strings.HasPrefix(name, "/") {
		return false
	}
	for _, s := range stored {
		if strings.HasPrefix(name, s+"/") || strings.HasPrefix(s, name+"/") {
			return false
		}
	}
	return true
}

func TestConformanceFile(t *testing.T) {
	gcsfstest.RunConformanceTests(t, func(t *testing.T) gcsfstest.Harness {
		b, err := fileblob.OpenBucket(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return fileHarness{memHarness{b}}
	})
}

// A local file system keeps modification times at clock-tick granularity,
// so an overwrite within one tick keeps both size and time. The test forces
// that case with Chtimes: the read must still see the old bytes or fail
// with ErrObjectChanged, never return the new file's bytes.
func TestFileOverwriteSameSizeAndTime(t *testing.T) {
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	old, fresh := testkit.RandomBytes(64<<10, 1), testkit.RandomBytes(64<<10, 2)
	if err := b.WriteAll(ctx, "ow", old, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "ow"))
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := gcsfs.New(ctx, b, &gcsfs.Options{DisablePrefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f, err := fsys.OpenContext(ctx, "ow")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := b.WriteAll(ctx, "ow", fresh, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "ow"), st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_, err = f.ReadAt(buf, 1000)
	switch {
	case err == nil && !bytes.Equal(buf, old[1000:5096]):
		t.Fatalf("read after a same-size, same-time overwrite returned bytes that are not the old object's (new object's: %v)", bytes.Equal(buf, fresh[1000:5096]))
	case err != nil && !errors.Is(err, gcsfs.ErrObjectChanged):
		t.Fatalf("read after overwrite: %v, want old bytes or ErrObjectChanged", err)
	}
}
