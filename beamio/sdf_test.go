package beamio

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"

	"github.com/zonalread/zonalread/dataset"
	"github.com/zonalread/zonalread/internal/leaktest"
)

// noLeaks fails the test if it leaves goroutines it started (those of
// earlier tests, such as prism's job server, are ignored).
func noLeaks(t *testing.T) { leaktest.VerifyNone(t) }

// splitFixture is 2 files of 10 row groups of 400 rows, one unit per row
// group, on a fake server; spans[u] is what reading unit u fetches.
type splitFixture struct {
	srv   interface{ ResetStats() }
	e     plannedRead
	plan  *dataset.Plan
	spans []int64
	rows  int64
}

func newSplitFixture(t *testing.T) (*splitFixture, func() int64) {
	files := testFiles(t, 2, 10, 400)
	srv := startServer(t, files)
	e := planFor(t, &ReadOptions{TargetBlockBytes: 1})
	p, err := dataset.LoadPlan(bytes.NewReader(e.Plan))
	if err != nil {
		t.Fatal(err)
	}
	f := &splitFixture{srv: srv.HTTP, e: e, plan: p, rows: p.TotalRows}
	spans := map[string][]int64{}
	for _, u := range p.Units {
		if spans[u.File] == nil {
			spans[u.File] = chunkSpans(t, files[u.File])
		}
		if u.NumRowGroups != 1 {
			t.Fatalf("unit %+v: want one row group per unit", u)
		}
		f.spans = append(f.spans, spans[u.File][u.FirstRowGroup])
	}
	if len(p.Units) != 20 || f.rows != 8000 {
		t.Fatalf("plan of %d units and %d rows, want 20 and 8000", len(p.Units), f.rows)
	}
	return f, func() int64 { return srv.HTTP.Stats().Bytes }
}

// spanBytes is what reading the units of r fetches.
func (f *splitFixture) spanBytes(r offsetrange.Restriction) int64 {
	var n int64
	for _, b := range f.spans[r.Start:r.End] {
		n += b
	}
	return n
}

// process runs readFn over tracker rt as a runner would; onBatch, when
// set, is called with each batch before it is collected.
func process(t *testing.T, fn *readFn, e plannedRead, rt *sdf.LockRTracker, onBatch func(Batch)) []row {
	t.Helper()
	var rows []row
	err := fn.ProcessElement(context.Background(), rt, e, func(b Batch) {
		if onBatch != nil {
			onBatch(b)
		}
		rows = append(rows, recordRows(t, b.Record)...)
		b.Record.Release()
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rt.IsDone() {
		t.Fatalf("tracker %v not done after ProcessElement", rt)
	}
	return rows
}

// A restriction split at a unit boundary before it is processed (as a
// runner's initial or dynamic split does) reads exactly its units: the
// server sends the bytes of their column chunks and nothing else; the two
// halves together read every row once.
func TestSplitAtUnitBoundaryReadsItsUnits(t *testing.T) {
	noLeaks(t)
	f, sent := newSplitFixture(t)
	fn := &readFn{SplitBytes: DefaultSplitBytes}
	defer fn.Teardown()

	rt := fn.CreateTracker(fn.CreateInitialRestriction(f.e))
	p, r, err := rt.TrySplit(0.35)
	if err != nil || r == nil {
		t.Fatalf("TrySplit: %v, %v", r, err)
	}
	primary, residual := p.(offsetrange.Restriction), r.(offsetrange.Restriction)
	if primary != (offsetrange.Restriction{Start: 0, End: 7}) || residual != (offsetrange.Restriction{Start: 7, End: 20}) {
		t.Fatalf("split into %v and %v, want [0,7) and [7,20)", primary, residual)
	}

	f.srv.ResetStats()
	rows := process(t, fn, f.e, rt, nil)
	if got, want := sent(), f.spanBytes(primary); got != want {
		t.Fatalf("primary %v: server sent %d bytes, its units' column chunks are %d", primary, got, want)
	}
	f.srv.ResetStats()
	rows = append(rows, process(t, fn, f.e, fn.CreateTracker(residual), nil)...)
	if got, want := sent(), f.spanBytes(residual); got != want {
		t.Fatalf("residual %v: server sent %d bytes, its units' column chunks are %d", residual, got, want)
	}
	checkRows(t, rows, f.rows)
}

// A split asked for while a unit is being read (a runner's dynamic split)
// leaves that unit to the primary and every later one to the residual: the
// primary stops after it, fetching nothing more, and no row is read twice.
func TestDynamicSplitWhileReading(t *testing.T) {
	noLeaks(t)
	f, sent := newSplitFixture(t)
	fn := &readFn{SplitBytes: DefaultSplitBytes}
	defer fn.Teardown()

	rt := fn.CreateTracker(offsetrange.Restriction{Start: 2, End: 20})
	var residual any
	f.srv.ResetStats()
	rows := process(t, fn, f.e, rt, func(b Batch) {
		if b.Unit == 5 && residual == nil {
			var err error
			if _, residual, err = rt.TrySplit(0); err != nil || residual == nil {
				t.Fatalf("TrySplit while reading unit 5: %v, %v", residual, err)
			}
		}
	})
	primary := rt.GetRestriction().(offsetrange.Restriction)
	if want := (offsetrange.Restriction{Start: 2, End: 6}); primary != want {
		t.Fatalf("primary %v after the split, want %v", primary, want)
	}
	if got, want := sent(), f.spanBytes(primary); got != want {
		t.Fatalf("primary %v: server sent %d bytes, its units' column chunks are %d", primary, got, want)
	}
	f.srv.ResetStats()
	rest := residual.(offsetrange.Restriction)
	rows = append(rows, process(t, fn, f.e, fn.CreateTracker(rest), nil)...)
	if got, want := sent(), f.spanBytes(rest); got != want {
		t.Fatalf("residual %v: server sent %d bytes, its units' column chunks are %d", rest, got, want)
	}
	rows = append(rows, process(t, fn, f.e, fn.CreateTracker(offsetrange.Restriction{Start: 0, End: 2}), nil)...)
	checkRows(t, rows, f.rows)
}

// SplitRestriction groups consecutive units by size, never cuts one, and
// covers the restriction exactly; RestrictionSize adds the units' sizes.
func TestSplitRestrictionBySize(t *testing.T) {
	e := plannedRead{UnitBytes: []int64{10, 10, 10, 50, 10, 10, 200, 1, 1}}
	fn := &readFn{SplitBytes: 30}
	got := fn.SplitRestriction(e, fn.CreateInitialRestriction(e))
	want := []offsetrange.Restriction{{Start: 0, End: 3}, {Start: 3, End: 4}, {Start: 4, End: 6}, {Start: 6, End: 7}, {Start: 7, End: 9}}
	if len(got) != len(want) {
		t.Fatalf("split into %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("split into %v, want %v", got, want)
		}
	}
	if s := fn.RestrictionSize(e, offsetrange.Restriction{Start: 3, End: 7}); s != 270 {
		t.Fatalf("RestrictionSize = %v, want 270", s)
	}
	if got := fn.SplitRestriction(e, offsetrange.Restriction{Start: 4, End: 4}); len(got) != 1 {
		t.Fatalf("empty restriction split into %v, want itself", got)
	}
}

// A file overwritten after the plan was made fails the read of its units
// with dataset.ErrPlanStale (no mix of versions); a cancelled context ends
// the read with an error wrapping context.Canceled.
func TestReadFailures(t *testing.T) {
	noLeaks(t)
	files := testFiles(t, 2, 4, 100)
	srv := startServer(t, files)
	e := planFor(t, &ReadOptions{TargetBlockBytes: 1})
	fn := &readFn{SplitBytes: DefaultSplitBytes}
	defer fn.Teardown()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := fn.ProcessElement(ctx, fn.CreateTracker(fn.CreateInitialRestriction(e)), e, func(b Batch) { b.Record.Release() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v, want context.Canceled", err)
	}

	if _, err := srv.PutObject(testBucket, "data/part-1.parquet", files["data/part-1.parquet"]); err != nil {
		t.Fatal(err)
	}
	var rows int64
	err = fn.ProcessElement(context.Background(), fn.CreateTracker(fn.CreateInitialRestriction(e)), e, func(b Batch) {
		rows += b.Record.NumRows()
		b.Record.Release()
	})
	if !errors.Is(err, dataset.ErrPlanStale) || rows != 400 {
		t.Fatalf("read after part-1 was overwritten: %d rows, %v; want part-0's 400 rows, then ErrPlanStale", rows, err)
	}
}
