package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zonalread/zonalread/internal/testserver"
)

// readUnitIDs reads one unit with ReadUnit and returns its row ids,
// checking every row's values.
func readUnitIDs(t testing.TB, ds *Dataset, u Unit) ([]int64, error) {
	var ids []int64
	err := ds.ReadUnit(context.Background(), u, func(rec arrow.RecordBatch) error {
		defer rec.Release()
		if !rec.Schema().Equal(ds.schema) {
			t.Fatalf("schema %s, want %s", rec.Schema(), ds.schema)
		}
		for _, r := range recordRows(t, rec) {
			if r != rowFor(r.id) {
				t.Fatalf("row %+v", r)
			}
			ids = append(ids, r.id)
		}
		return nil
	})
	return ids, err
}

// Shard counts on real files: one file shared by 8 ranks, 1000 tiny files
// by 3, uneven row groups by 4 (units split by row range and trimmed to
// the row groups holding their rows); every shard read back by value.
func TestShardCounts(t *testing.T) {
	tiny := map[string][]byte{}
	for i := range 1000 {
		tiny[fmt.Sprintf("d/t%04d.parquet", i)] = writeParquet(t, int64(i)*7, 7, 7)
	}
	for _, c := range []struct {
		name   string
		files  map[string][]byte
		world  int
		equal  bool
		counts []int64
		groups [][2]int // per rank: first row group and count of its first unit (nil: unchecked)
	}{
		{"1 file, world 8", map[string][]byte{"d/a.parquet": writeParquet(t, 0, 1000, 1000)}, 8, true,
			[]int64{125, 125, 125, 125, 125, 125, 125, 125}, nil},
		{"1000 tiny files, world 3, equal", tiny, 3, true, []int64{2333, 2333, 2333}, nil},
		{"1000 tiny files, world 3", tiny, 3, false, []int64{2333, 2333, 2334}, nil},
		{"uneven row groups, world 4", map[string][]byte{"d/u.parquet": writeParquet(t, 0, 1003, 300)}, 4, true,
			[]int64{250, 250, 250, 250}, [][2]int{{0, 1}, {0, 2}, {1, 2}, {2, 2}}},
	} {
		fsys, _ := memFS(t, c.files)
		ds, err := ReadParquet(fsys, "d/*.parquet", nil) // one unit per file: every row group merged
		if err != nil {
			t.Fatal(err)
		}
		p, err := ds.Plan()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for r := range c.world {
			s, err := p.Shard(ShardOptions{Rank: r, World: c.world, Equal: c.equal})
			if err != nil {
				t.Fatal(err)
			}
			if s.Rows != c.counts[r] {
				t.Fatalf("%s: rank %d has %d rows, want %d", c.name, r, s.Rows, c.counts[r])
			}
			if c.groups != nil && (s.Units[0].FirstRowGroup != c.groups[r][0] || s.Units[0].NumRowGroups != c.groups[r][1]) {
				t.Fatalf("%s: rank %d reads %+v, want row groups %v", c.name, r, s.Units[0], c.groups[r])
			}
			var n int64
			for _, u := range s.Units {
				ids, err := readUnitIDs(t, ds, u)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					if seen[id] {
						t.Fatalf("%s: row %d twice", c.name, id)
					}
					seen[id] = true
				}
				n += int64(len(ids))
			}
			if n != s.Rows {
				t.Fatalf("%s: rank %d read %d rows of %d", c.name, r, n, s.Rows)
			}
		}
	}
}

func TestReadUnitRejects(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds := shardDS(t, fsys)
	p, _ := ds.Plan()
	u := p.Units[0]
	u.RowOffset, u.Rows = 10, 5
	if ids, err := readUnitIDs(t, ds, u); err != nil || !slices.Equal(ids, idRange(10, 15)) {
		t.Fatalf("rows [10, 15): %v, %v", ids, err)
	}
	for name, c := range map[string]struct {
		u    Unit
		want error
	}{
		"rows past the row group": {Unit{File: u.File, FileSize: u.FileSize, NumRowGroups: 1, RowOffset: 999, Rows: 2}, fs.ErrInvalid},
		"row group past the file": {Unit{File: u.File, FileSize: u.FileSize, FirstRowGroup: 10, NumRowGroups: 1}, fs.ErrInvalid},
		"another size":            {Unit{File: u.File, FileSize: u.FileSize + 1, NumRowGroups: 1, Rows: 1}, ErrPlanStale},
		"unknown file":            {Unit{File: "d/nope.parquet", NumRowGroups: 1}, fs.ErrNotExist},
	} {
		if _, err := readUnitIDs(t, ds, c.u); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// A plan written and loaded shards exactly as the one in memory, and the
// dataset opened from it reads the same batches.
func TestSavedPlanShardsAlike(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds := shardDS(t, fsys)
	p1, err := ds.Plan()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlan(&buf, p1); err != nil {
		t.Fatal(err)
	}
	p2, err := LoadPlan(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if p1.Fingerprint() != p2.Fingerprint() {
		t.Fatal("fingerprints differ")
	}
	loaded, err := OpenPlan(fsys, p2, &ReadOptions{BatchRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.schema.Equal(ds.schema) {
		t.Fatalf("schema %s, want %s", loaded.schema, ds.schema)
	}
	for r := range 3 {
		sh := ShardOptions{Rank: r, World: 3, Equal: true, ShuffleUnits: true, Seed: 4, Epoch: 1}
		s1, _ := p1.Shard(sh)
		s2, _ := p2.Shard(sh)
		if !reflect.DeepEqual(s1, s2) {
			t.Fatalf("rank %d: shards differ:\n%+v\n%+v", r, s1, s2)
		}
		bo := &BatchOptions{BatchSize: 128, LocalShuffleBufferSize: 500}
		it1, _ := ds.ShardBatches(context.Background(), sh, nil, bo)
		a, _, _ := drainShard(t, it1, 0)
		it2, err := loaded.ShardBatches(context.Background(), sh, nil, bo)
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := drainShard(t, it2, 0)
		if !slices.Equal(a, b) {
			t.Fatalf("rank %d: batches of the loaded plan differ", r)
		}
	}
	buf.Bytes()[bytes.IndexByte(buf.Bytes(), '[')+1] = '7' // break the JSON
	if _, err := LoadPlan(&buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a broken plan: %v", err)
	}
}

// Ranks that load a saved plan make one object read each, where ranks that
// plan for themselves read every footer; a file overwritten after the plan
// was saved is reported, not misread.
func TestSavedPlanOverServer(t *testing.T) {
	srv, err := testserver.Start(&testserver.Options{Buckets: []string{"train"}, NoGRPC: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for name, data := range fourFiles(t) {
		if _, err := srv.PutObject("train", name, data); err != nil {
			t.Fatal(err)
		}
	}
	p, err := shardDS(t, serverFS(t, srv)).Plan()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlan(&buf, p); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.PutObject("train", "plan.json", buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	t.Logf("plan of %d files, %d units: %d bytes", len(p.Files), len(p.Units), buf.Len())

	srv.HTTP.ResetStats()
	for range 4 {
		shardDS(t, serverFS(t, srv))
	}
	planning := srv.HTTP.Stats().Requests
	srv.HTTP.ResetStats()
	var ranks []*Dataset
	for range 4 {
		fsys := serverFS(t, srv)
		b, err := fs.ReadFile(fsys, "plan.json")
		if err != nil {
			t.Fatal(err)
		}
		lp, err := LoadPlan(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		d, err := OpenPlan(fsys, lp, &ReadOptions{BatchRows: 300})
		if err != nil {
			t.Fatal(err)
		}
		ranks = append(ranks, d)
	}
	loading := srv.HTTP.Stats().Requests
	t.Logf("4 ranks: %d data requests reading every footer, %d loading the plan", planning, loading)
	if planning != 4*4 || loading != 4 {
		t.Fatalf("4 ranks made %d data requests reading footers (want 16), %d loading the plan (want 4)", planning, loading)
	}
	sh := ShardOptions{Rank: 0, World: 1}
	it, _ := ranks[0].ShardBatches(context.Background(), sh, nil, nil)
	if ids, _, _ := drainShard(t, it, 0); len(ids) != 31003 {
		t.Fatalf("%d rows before the overwrite", len(ids))
	}
	if _, err := srv.PutObject("train", "d/part-2.parquet", writeParquet(t, 50000, 10000, 1000)); err != nil {
		t.Fatal(err)
	}
	it, _ = ranks[1].ShardBatches(context.Background(), sh, nil, nil)
	defer it.Close()
	for it.Next() {
		for _, r := range recordRows(t, it.Batch().Record) {
			if r.id >= 50000 {
				t.Fatalf("read row %d of the overwritten file", r.id)
			}
		}
	}
	if err := it.Err(); !errors.Is(err, ErrPlanStale) {
		t.Fatalf("reading an overwritten file: %v, want ErrPlanStale", err)
	}
	// The executor of a dataset opened from the plan checks it too.
	all := ranks[2].Iter(context.Background())
	defer all.Close()
	for all.Next() {
		for _, r := range recordRows(t, all.Block().Record) {
			if r.id >= 50000 {
				t.Fatalf("Iter read row %d of the overwritten file", r.id)
			}
		}
	}
	if err := all.Err(); !errors.Is(err, ErrPlanStale) {
		t.Fatalf("Iter over an overwritten file: %v, want ErrPlanStale", err)
	}
}

// A saved plan is untrusted: LoadPlan rejects or accepts, never panics.
func FuzzLoadPlan(f *testing.F) {
	fsys, _ := memFS(f, map[string][]byte{"d/a.parquet": writeParquet(f, 0, 100, 30)})
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1})
	if err != nil {
		f.Fatal(err)
	}
	p, _ := ds.Plan()
	var buf bytes.Buffer
	if err := WritePlan(&buf, p); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(bytes.Replace(buf.Bytes(), []byte(`"rows":30`), []byte(`"rows":31`), 1))
	f.Add(bytes.Replace(buf.Bytes(), []byte(`"first_row_group":0`), []byte(`"first_row_group":-1`), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		lp, err := LoadPlan(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrUnsupported", err)
			}
			return
		}
		if lp.TotalRows != unitRows(lp.Units) {
			t.Fatalf("accepted a plan of %d rows whose units hold %d", lp.TotalRows, unitRows(lp.Units))
		}
	})
}
