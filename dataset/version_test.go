package dataset

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testserver"
)

// versionRig is the three files on the HTTP fake, read through gcsfs.
func versionRig(t *testing.T) (*testserver.Test, *gcsfs.FS, map[string][]byte) {
	t.Helper()
	files := threeFiles(t)
	srv, fsys := httpFS(t, files, gcsfs.Options{})
	return srv, fsys, files
}

// On GCS, planning costs one listing and one footer read per file, and an
// execution no request but its data: files are opened at the version the
// listing saw (gcsfs.FS.OpenVersion), not stat'ed, and every row is read.
func TestPlanAndIterStatNothing(t *testing.T) {
	srv, fsys, _ := versionRig(t)
	srv.HTTP.ResetStats()
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	// The metadata requests are the listing of d and, sent with it,
	// gcsfs's check that no object is named d.
	if st := srv.HTTP.Stats(); st.MetadataRequests != 2 || st.Requests != 3 {
		t.Fatalf("planning sent %d metadata and %d data requests, want 2 (the listing) and 3 (the footers)", st.MetadataRequests, st.Requests)
	}
	srv.HTTP.ResetStats()
	rows := collect(t, ds.Iter(context.Background()))
	if len(rows) != 30000 || !slices.IsSortedFunc(rows, func(a, b row) int { return int(a.id - b.id) }) || rows[0].id != 0 || rows[29999].id != 29999 {
		t.Fatalf("read %d rows", len(rows))
	}
	if st := srv.HTTP.Stats(); st.MetadataRequests != 0 {
		t.Fatalf("the execution sent %d metadata requests, want none", st.MetadataRequests)
	}
}

// A dataset reads the versions it planned: a file overwritten between
// ReadParquet and an execution (Iter, ReadUnit, a shard) fails with
// ErrPlanStale, and no row of the new version is handed out; on GCS,
// whose reads pin the generation, and on a bucket without generations,
// whose opens compare size and modification time.
func TestExecutionReadsPlannedVersions(t *testing.T) {
	srv, gcs, files := versionRig(t)
	mem, bucket := memFS(t, files)
	for _, c := range []struct {
		name string
		fsys fs.FS
		put  func(name string, data []byte)
	}{
		{"gcs", gcs, func(name string, data []byte) { srv.Put(t, name, data) }},
		{"mem", mem, func(name string, data []byte) {
			if err := bucket.WriteAll(context.Background(), name, data, nil); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		ds, err := ReadParquet(c.fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := ds.Plan()
		if err != nil {
			t.Fatal(err)
		}
		units := plan.Units
		c.put("d/part-2.parquet", writeParquet(t, 50000, 10000, 1000))
		it := ds.Iter(context.Background())
		for it.Next() {
			for _, r := range recordRows(t, it.Block().Record) {
				if r.id >= 50000 {
					t.Fatalf("%s: Iter read row %d of the new version", c.name, r.id)
				}
			}
		}
		if err := it.Err(); !errors.Is(err, ErrPlanStale) {
			t.Fatalf("%s: Iter over an overwritten file: %v, want ErrPlanStale", c.name, err)
		}
		it.Close()
		last := units[len(units)-1]
		err = ds.ReadUnit(context.Background(), last, func(rec arrow.RecordBatch) error {
			rec.Release()
			t.Fatalf("%s: ReadUnit of an overwritten file emitted rows", c.name)
			return nil
		})
		if !errors.Is(err, ErrPlanStale) {
			t.Fatalf("%s: ReadUnit of an overwritten file: %v, want ErrPlanStale", c.name, err)
		}
		// A new plan reads the new version.
		c.put("d/part-2.parquet", writeParquet(t, 50000, 10000, 1000))
		ds, err = ReadParquet(c.fsys, "d/*.parquet", &ReadOptions{PreserveOrder: true})
		if err != nil {
			t.Fatal(err)
		}
		rows := collect(t, ds.Iter(context.Background()))
		if len(rows) != 30000 || rows[29999].id != 59999 {
			t.Fatalf("%s: replanned: %d rows, last %d", c.name, len(rows), rows[len(rows)-1].id)
		}
	}
}

// relister is a gcsfs.FS whose listing is out of date by the time it
// returns: after listing it overwrites a file, as a writer racing the
// planner would.
type relister struct {
	*gcsfs.FS
	after func()
}

func (r relister) ReadDirContext(ctx context.Context, name string) ([]fs.DirEntry, error) {
	entries, err := r.FS.ReadDirContext(ctx, name)
	r.after()
	return entries, err
}

// A file overwritten between the listing and its footer read is planned
// at its new version: the listing's version is only where planning starts.
func TestPlanningRetriesAListedVersionSinceChanged(t *testing.T) {
	srv, fsys, _ := versionRig(t)
	racing := relister{FS: fsys, after: func() { srv.Put(t, "d/part-1.parquet", writeParquet(t, 70000, 5000, 1000)) }}
	ds, err := ReadParquet(racing, "d/*.parquet", &ReadOptions{PreserveOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	rows := collect(t, ds.Iter(context.Background()))
	if len(rows) != 25000 || rows[10000].id != 70000 || rows[14999].id != 74999 || rows[15000].id != 20000 {
		t.Fatalf("%d rows; want part-1's new 5000", len(rows))
	}
}

// A file deleted between the listing and its footer read fails planning
// with an error wrapping fs.ErrNotExist that names it (not ErrPlanStale:
// no plan was made yet); with MaxErroredBlocks it is skipped and the
// others are read whole.
func TestPlanningAListedFileSinceDeleted(t *testing.T) {
	srv, fsys, _ := versionRig(t)
	racing := relister{FS: fsys, after: func() {
		if err := srv.DeleteObject("pq", "d/part-1.parquet"); err != nil {
			t.Fatal(err)
		}
	}}
	_, err := ReadParquet(racing, "d/*.parquet", nil)
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrPlanStale) || !strings.Contains(err.Error(), "part-1") {
		t.Fatalf("planning a deleted file: %v, want fs.ErrNotExist naming it", err)
	}
	srv.Put(t, "d/part-1.parquet", writeParquet(t, 10000, 10000, 1000))
	ds, err := ReadParquet(racing, "d/*.parquet", &ReadOptions{PreserveOrder: true, MaxErroredBlocks: 1})
	if err != nil {
		t.Fatal(err)
	}
	rows := collect(t, ds.Iter(context.Background()))
	if len(rows) != 20000 || rows[9999].id != 9999 || rows[10000].id != 20000 {
		t.Fatalf("%d rows; want part-0 and part-2 whole", len(rows))
	}
}

// Planning on a gcsfs.FS is bounded by ReadParquetContext's ctx: its
// listing, stats and opens fail with ctx's error (they went through fs.FS
// methods, which take none, and gcsfs's own context methods were not
// found: the dataset's interface did not match gcsfs.FS.OpenContext).
func TestPlanningHonoursContext(t *testing.T) {
	_, fsys, _ := versionRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := matchFiles(ctx, fsys, "d/*.parquet"); !errors.Is(err, context.Canceled) {
		t.Fatalf("listing with a cancelled ctx: %v, want context.Canceled", err)
	}
	if got := regularFiles(ctx, fsys, []string{"d/part-0.parquet"}); len(got) != 0 {
		t.Fatalf("stat with a cancelled ctx found %v", got)
	}
	if _, err := openSource(ctx, fsys, "d/part-0.parquet", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a cancelled ctx: %v, want context.Canceled", err)
	}
}
