package gcsfstest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
)

// OpenVersion of a version from Stat or from a listing reads that
// version's bytes; of a version since overwritten or deleted it fails
// (at the open or at the read) with ErrObjectChanged and never returns the
// new bytes; a negative size is ErrInvalid.
func testOpenVersion(t *testing.T, h Harness) {
	ctx := context.Background()
	old := testkit.RandomBytes(300<<10, 40)
	put(t, h, "v/obj", old)
	opts := smallOpts()
	opts.DisablePrefetch = true // every read reaches the server
	f := openFS(t, h, opts)
	st, err := f.Stat("v/obj")
	if err != nil {
		t.Fatal(err)
	}
	fromStat, ok := gcsfs.VersionOf(st)
	if !ok || fromStat.Size != int64(len(old)) {
		t.Fatalf("VersionOf(Stat) = %+v, %v", fromStat, ok)
	}
	entries, err := f.ReadDir("v")
	if err != nil || len(entries) != 1 {
		t.Fatalf("ReadDir = %v, %v", entries, err)
	}
	info, err := entries[0].Info()
	if err != nil {
		t.Fatal(err)
	}
	fromList, ok := gcsfs.VersionOf(info)
	if !ok || fromList.Size != fromStat.Size || fromList.Generation != fromStat.Generation {
		t.Fatalf("VersionOf(listing) = %+v, VersionOf(Stat) = %+v", fromList, fromStat)
	}
	if dir, _ := f.Stat("v"); dir != nil {
		if _, ok := gcsfs.VersionOf(dir); ok {
			t.Fatal("VersionOf a directory is ok")
		}
	}
	for _, v := range []gcsfs.Version{fromStat, fromList} {
		file, err := f.OpenVersion(ctx, "v/obj", v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(file, 0, file.Size()))
		file.Close()
		if err != nil {
			t.Fatal(err)
		}
		testkit.SameBytes(t, "OpenVersion", got, old)
	}
	if _, err := f.OpenVersion(ctx, "v/obj", gcsfs.Version{Size: -1}); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("OpenVersion of a negative size = %v, want ErrInvalid", err)
	}

	put(t, h, "v/obj", testkit.RandomBytes(200<<10, 41))
	expectChanged(t, f, "v/obj", fromList, old)
	if err := h.Delete(ctx, "v/obj"); err != nil {
		t.Fatal(err)
	}
	expectChanged(t, f, "v/obj", fromList, old)
}

// expectChanged opens name at v, which it no longer is, and reads it:
// the open or the read must fail with ErrObjectChanged, or the read
// return v's bytes (old); never other bytes.
func expectChanged(t *testing.T, f *gcsfs.FS, name string, v gcsfs.Version, old []byte) {
	t.Helper()
	file, err := f.OpenVersion(context.Background(), name, v)
	if err != nil {
		if !errors.Is(err, gcsfs.ErrObjectChanged) {
			t.Fatalf("OpenVersion of a changed object = %v, want ErrObjectChanged", err)
		}
		return
	}
	defer file.Close()
	buf := make([]byte, 10<<10)
	_, err = file.ReadAt(buf, 100<<10)
	switch {
	case err == nil:
		testkit.SameBytes(t, "read of a changed object", buf, old[100<<10:110<<10])
	case !errors.Is(err, gcsfs.ErrObjectChanged):
		t.Fatalf("read of a changed object = %v, want the old bytes or ErrObjectChanged", err)
	}
}
