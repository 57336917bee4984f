package beamio

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/zonalread/zonalread/dataset"
	"github.com/zonalread/zonalread/gcsfs"
)

// DefaultSplitBytes is ReadOptions.SplitBytes when left zero: the size of
// the ranges the read is first split into.
const DefaultSplitBytes = 128 << 20

// ReadOptions configure ReadParquet. A nil *ReadOptions means the defaults;
// a zero field takes its default.
type ReadOptions struct {
	// Columns projects the read onto these columns, as
	// dataset.ReadOptions.Columns (top-level names or dotted paths to
	// nested leaves); nil reads every column.
	Columns []string
	// TargetBlockBytes merges neighbouring small row groups of a file into
	// one plan unit up to this many uncompressed projected bytes: the
	// smallest piece of work a runner can split off. Default
	// dataset.DefaultTargetBlockBytes.
	TargetBlockBytes int64
	// BatchRows caps the rows of one Batch. Default
	// dataset.DefaultBatchRows.
	BatchRows int64
	// CoalesceGap joins column-chunk ranges of a unit closer than this into
	// one ranged read. Default dataset.DefaultCoalesceGap.
	CoalesceGap int64
	// SplitBytes is the size the read is first split into: consecutive
	// units are grouped into restrictions of about this many bytes of
	// their files (a unit larger than it is a restriction alone). The
	// runner may split further while reading. Default DefaultSplitBytes.
	SplitBytes int64
}

// normalize returns o with its defaults filled in; it is the one place
// they are applied.
func (o *ReadOptions) normalize() ReadOptions {
	var n ReadOptions
	if o != nil {
		n = *o
	}
	if n.TargetBlockBytes <= 0 {
		n.TargetBlockBytes = dataset.DefaultTargetBlockBytes
	}
	if n.BatchRows <= 0 {
		n.BatchRows = dataset.DefaultBatchRows
	}
	if n.CoalesceGap <= 0 {
		n.CoalesceGap = dataset.DefaultCoalesceGap
	}
	if n.SplitBytes <= 0 {
		n.SplitBytes = DefaultSplitBytes
	}
	return n
}

// ReadParquet reads the Parquet files matching pattern (path.Match syntax,
// as fs.Glob) in the filesystem at fsURL (a gcsfs.Open URL: gs://bucket,
// gs://bucket?zonal=true, file:///dir) and returns a PCollection of Batch:
// every row of those files exactly once, in batches of the dataset's
// unified schema projected onto opts.Columns. See the package doc for how
// the read is planned and split. Errors (no file matches, a schema
// conflict, an unreadable or changed file) fail the pipeline when it runs.
func ReadParquet(s beam.Scope, fsURL, pattern string, opts *ReadOptions) beam.PCollection {
	s = s.Scope("beamio.ReadParquet")
	o := opts.normalize()
	imp := beam.Impulse(s)
	plans := beam.ParDo(s, &planFn{URL: fsURL, Pattern: pattern, Columns: o.Columns,
		TargetBlockBytes: o.TargetBlockBytes, BatchRows: o.BatchRows, CoalesceGap: o.CoalesceGap}, imp)
	return beam.ParDo(s, &readFn{SplitBytes: o.SplitBytes}, plans)
}

// plannedRead is the element of the read: a whole dataset's saved plan
// (dataset.WritePlan) and how to read it. The restriction over it is a range
// of indices into the plan's units.
type plannedRead struct {
	// URL is the filesystem's, for gcsfs.Open.
	URL string
	// Plan is the plan as dataset.WritePlan wrote it: files with their
	// versions and footers, and the units.
	Plan []byte
	// UnitBytes is each unit's estimated size, parallel to the plan's units.
	UnitBytes []int64
	// BatchRows and CoalesceGap are dataset.ReadOptions'.
	BatchRows, CoalesceGap int64
}

func init() {
	beam.RegisterType(reflect.TypeOf(plannedRead{}))
	register.DoFn3x1[context.Context, []byte, func(plannedRead), error](&planFn{})
	register.Emitter1[plannedRead]()
}

// planFn lists the files, reads their footers and emits the read plan: it
// runs once per ReadParquet, on one worker.
type planFn struct {
	URL, Pattern                             string
	Columns                                  []string
	TargetBlockBytes, BatchRows, CoalesceGap int64
}

// ProcessElement plans the read of the impulse's one element.
func (fn *planFn) ProcessElement(ctx context.Context, _ []byte, emit func(plannedRead)) error {
	fsys, err := gcsfs.Open(ctx, fn.URL, nil)
	if err != nil {
		return fmt.Errorf("beamio: plan: %w", err)
	}
	defer fsys.Close()
	ds, err := dataset.ReadParquetContext(ctx, fsys, fn.Pattern, &dataset.ReadOptions{Columns: fn.Columns, TargetBlockBytes: fn.TargetBlockBytes})
	if err != nil {
		return fmt.Errorf("beamio: plan %s in %s: %w", fn.Pattern, fn.URL, err)
	}
	p, err := ds.Plan()
	if err != nil {
		return fmt.Errorf("beamio: plan %s in %s: %w", fn.Pattern, fn.URL, err)
	}
	var buf bytes.Buffer
	if err := dataset.WritePlan(&buf, p); err != nil {
		return fmt.Errorf("beamio: plan %s in %s: %w", fn.Pattern, fn.URL, err)
	}
	emit(plannedRead{URL: fn.URL, Plan: buf.Bytes(), UnitBytes: unitBytes(p), BatchRows: fn.BatchRows, CoalesceGap: fn.CoalesceGap})
	return nil
}

// unitBytes estimates each unit's bytes as its share of its file's size, by
// rows (the plan does not say how the file's bytes fall between its row
// groups); at least 1, so that every unit weighs.
func unitBytes(p *dataset.Plan) []int64 {
	size := make(map[string]dataset.PlanFile, len(p.Files))
	for _, f := range p.Files {
		size[f.Name] = f
	}
	out := make([]int64, len(p.Units))
	for i, u := range p.Units {
		f := size[u.File]
		b := int64(1)
		if f.Rows > 0 {
			b = max(1, int64(math.Round(float64(f.Size)*float64(u.Rows)/float64(f.Rows))))
		}
		out[i] = b
	}
	return out
}
