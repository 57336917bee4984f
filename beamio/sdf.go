package beamio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/zonalread/zonalread/dataset"
	"github.com/zonalread/zonalread/gcsfs"
)

// Metric names, in namespace MetricsNamespace, that readFn counts:
// Restrictions is the restrictions processed (a restriction split
// off by the runner is processed on its own), Units the plan units read,
// Rows the rows emitted.
const (
	MetricsNamespace   = "zonalread/beamio"
	MetricRestrictions = "restrictions"
	MetricUnits        = "units"
	MetricRows         = "rows"
)

func init() {
	register.DoFn4x1[context.Context, *sdf.LockRTracker, plannedRead, func(Batch), error](&readFn{})
	register.Emitter1[Batch]()
}

var (
	restrictionsCounter = beam.NewCounter(MetricsNamespace, MetricRestrictions)
	unitsCounter        = beam.NewCounter(MetricsNamespace, MetricUnits)
	rowsCounter         = beam.NewCounter(MetricsNamespace, MetricRows)
)

// readFn is the splittable DoFn of the read: its element is a plannedRead,
// its restriction a range of indices into the plan's units.
type readFn struct {
	// SplitBytes is ReadOptions.SplitBytes.
	SplitBytes int64

	// The dataset of the last plan read, over an FS opened from its URL;
	// kept across bundles, closed by Teardown.
	fsys    *gcsfs.FS
	fsURL   string
	planKey [sha256.Size]byte
	plan    *dataset.Plan
	ds      *dataset.Dataset
}

// CreateInitialRestriction is every unit of the plan.
func (fn *readFn) CreateInitialRestriction(e plannedRead) offsetrange.Restriction {
	return offsetrange.Restriction{Start: 0, End: int64(len(e.UnitBytes))}
}

// SplitRestriction cuts r into runs of consecutive units of about
// SplitBytes each (by the units' estimated sizes); a unit is never cut.
func (fn *readFn) SplitRestriction(e plannedRead, r offsetrange.Restriction) []offsetrange.Restriction {
	var out []offsetrange.Restriction
	start, acc := r.Start, int64(0)
	for i := r.Start; i < r.End; i++ {
		b := unitSize(e, i)
		if i > start && acc+b > fn.SplitBytes {
			out = append(out, offsetrange.Restriction{Start: start, End: i})
			start, acc = i, 0
		}
		acc += min(b, fn.SplitBytes) // a huge unit neither overflows nor swallows the next
	}
	if start < r.End || len(out) == 0 {
		out = append(out, offsetrange.Restriction{Start: start, End: r.End})
	}
	return out
}

// RestrictionSize is the estimated bytes of r's units.
func (fn *readFn) RestrictionSize(e plannedRead, r offsetrange.Restriction) float64 {
	var n float64
	for i := r.Start; i < r.End; i++ {
		n += float64(unitSize(e, i))
	}
	return n
}

// unitSize is unit i's estimated bytes, 1 for an index outside the plan
// (ProcessElement reports that one).
func unitSize(e plannedRead, i int64) int64 {
	if i < 0 || i >= int64(len(e.UnitBytes)) || e.UnitBytes[i] < 1 {
		return 1
	}
	return e.UnitBytes[i]
}

// CreateTracker tracks r with the standard offset-range tracker, which
// splits at unit boundaries (TrySplit) for the runner's dynamic splits.
func (fn *readFn) CreateTracker(r offsetrange.Restriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(offsetrange.NewTracker(r))
}

// ProcessElement reads the units of its restriction, claiming each before
// reading it: a unit the runner split off before it was claimed is left to
// the residual's reader, and a unit claimed is read whole, so every row is
// emitted by exactly one restriction.
func (fn *readFn) ProcessElement(ctx context.Context, rt *sdf.LockRTracker, e plannedRead, emit func(Batch)) error {
	restrictionsCounter.Inc(ctx, 1)
	ds, p, err := fn.open(ctx, e)
	if err != nil {
		return err
	}
	r := rt.GetRestriction().(offsetrange.Restriction)
	for i := r.Start; rt.TryClaim(i); i++ {
		if i < 0 || i >= int64(len(p.Units)) {
			return fmt.Errorf("beamio: unit %d of a plan of %d: %w", i, len(p.Units), fs.ErrInvalid)
		}
		u := p.Units[i]
		err := ds.ReadUnit(ctx, u, func(rec arrow.RecordBatch) error {
			rowsCounter.Inc(ctx, rec.NumRows())
			emit(Batch{Record: rec, Source: u.File, Unit: i})
			return nil
		})
		if err != nil {
			return fmt.Errorf("beamio: read unit %d (%s, row groups [%d, +%d)): %w", i, u.File, u.FirstRowGroup, u.NumRowGroups, err)
		}
		unitsCounter.Inc(ctx, 1)
	}
	return rt.GetError()
}

// open returns the dataset of e's plan, reusing the last one (and its FS)
// when e has the same plan and URL.
func (fn *readFn) open(ctx context.Context, e plannedRead) (*dataset.Dataset, *dataset.Plan, error) {
	key := sha256.Sum256(e.Plan)
	if fn.ds != nil && key == fn.planKey && e.URL == fn.fsURL {
		return fn.ds, fn.plan, nil
	}
	p, err := dataset.LoadPlan(bytes.NewReader(e.Plan))
	if err != nil {
		return nil, nil, fmt.Errorf("beamio: %w", err)
	}
	if len(p.Units) != len(e.UnitBytes) {
		return nil, nil, fmt.Errorf("beamio: a plan of %d units with %d sizes: %w", len(p.Units), len(e.UnitBytes), fs.ErrInvalid)
	}
	if fn.fsys == nil || e.URL != fn.fsURL {
		if err := fn.closeFS(); err != nil {
			return nil, nil, err
		}
		// The FS outlives this bundle: its clients must not be bound to
		// the bundle's context (gcsfs bounds its own waits).
		fsys, err := gcsfs.Open(context.WithoutCancel(ctx), e.URL, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("beamio: %w", err)
		}
		fn.fsys, fn.fsURL = fsys, e.URL
	}
	ds, err := dataset.OpenPlan(fn.fsys, p, &dataset.ReadOptions{BatchRows: e.BatchRows, CoalesceGap: e.CoalesceGap})
	if err != nil {
		return nil, nil, fmt.Errorf("beamio: %w", err)
	}
	fn.planKey, fn.plan, fn.ds = key, p, ds
	return ds, p, nil
}

// closeFS closes the FS the DoFn holds, if any.
func (fn *readFn) closeFS() error {
	if fn.fsys == nil {
		return nil
	}
	err, url := fn.fsys.Close(), fn.fsURL
	fn.fsys, fn.fsURL, fn.plan, fn.ds = nil, "", nil, nil
	if err != nil && !errors.Is(err, fs.ErrClosed) {
		return fmt.Errorf("beamio: close %s: %w", url, err)
	}
	return nil
}

// Teardown closes the FS.
func (fn *readFn) Teardown() error { return fn.closeFS() }
