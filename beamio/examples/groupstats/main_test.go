package main

import (
	"context"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/zonalread/zonalread/beamio"
	"github.com/zonalread/zonalread/dataset"
	"github.com/zonalread/zonalread/gcsfs"
)

func TestMain(m *testing.M) { os.Exit(ptest.MainRetWithDefault(m, "prism")) }

// got holds the stats the pipeline produced, by key (prism runs the workers
// in the test's process).
var got = struct {
	sync.Mutex
	m map[string]stats
}{m: map[string]stats{}}

func init() { register.Function2x0[string, stats](collectStats) }

func collectStats(k string, s stats) {
	got.Lock()
	defer got.Unlock()
	got.m[k] = s
}

// The pipeline's per-key stats over the demo data (split into many
// restrictions) equal those the core's one-process executor computes from
// the same files.
func TestGroupStatsMatchesOneProcess(t *testing.T) {
	srv, err := startDemo()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.HTTPURL(), "http://"))

	p, s := beam.NewPipelineWithRoot()
	opts := &beamio.ReadOptions{Columns: []string{"city", "km"}, TargetBlockBytes: 1, SplitBytes: 64 << 10}
	beam.ParDo0(s, collectStats, groupStats(s, demoURL, "trips/*.parquet", "city", "km", opts))
	if err := ptest.Run(p); err != nil {
		t.Fatal(err)
	}
	want := oneProcessStats(t)
	got.Lock()
	defer got.Unlock()
	if len(got.m) != len(want) {
		t.Fatalf("pipeline: %d keys %v, one process: %d keys %v", len(got.m), got.m, len(want), want)
	}
	for k, w := range want {
		g := got.m[k]
		if g.Rows != w.Rows || g.Min != w.Min || g.Max != w.Max || math.Abs(g.Sum-w.Sum) > 1e-9*math.Abs(w.Sum) {
			t.Errorf("%s: pipeline %+v, one process %+v", k, g, w)
		}
	}
	if n := demoFiles * demoRowGroups * demoRowsPerGroup; sumRows(got.m) != int64(n) {
		t.Errorf("pipeline counted %d rows, the demo has %d", sumRows(got.m), n)
	}
}

func sumRows(m map[string]stats) (n int64) {
	for _, s := range m {
		n += s.Rows
	}
	return n
}

// oneProcessStats computes the stats with dataset.ReadParquet in this
// process, without Beam.
func oneProcessStats(t *testing.T) map[string]stats {
	ctx := context.Background()
	fsys, err := gcsfs.Open(ctx, demoURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	ds, err := dataset.ReadParquet(fsys, "trips/*.parquet", &dataset.ReadOptions{Columns: []string{"city", "km"}})
	if err != nil {
		t.Fatal(err)
	}
	it := ds.Iter(ctx)
	defer it.Close()
	out := map[string]stats{}
	var fn statsFn
	for it.Next() {
		rec := it.Block().Record
		city, km := rec.Column(0).(*array.String), rec.Column(1).(*array.Float64)
		for i := range city.Len() {
			out[city.Value(i)] = fn.AddInput(out[city.Value(i)], km.Value(i))
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
