package beamio

import (
	"context"
	"os"
	"reflect"
	"sync"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/metrics"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
)

// TestMain runs the pipelines of this package's tests on prism, in this
// process (loopback workers), unless --runner says otherwise.
func TestMain(m *testing.M) { os.Exit(ptest.MainRetWithDefault(m, "prism")) }

// sinks hold what collectFn saw, by sink name: prism runs the workers in
// the test's process, so a DoFn can hand rows back to the test.
var sinks = struct {
	sync.Mutex
	rows map[string][]row
}{rows: map[string][]row{}}

func init() {
	register.DoFn2x1[context.Context, Batch, error](&collectFn{})
	beam.RegisterType(reflect.TypeOf((*collectFn)(nil)).Elem())
}

// collectFn appends the rows of each batch to sink Sink.
type collectFn struct{ Sink string }

// ProcessElement collects b's rows.
func (fn *collectFn) ProcessElement(_ context.Context, b Batch) error {
	rows := batchRows(b)
	sinks.Lock()
	defer sinks.Unlock()
	sinks.rows[fn.Sink] = append(sinks.rows[fn.Sink], rows...)
	return nil
}

// counter is the value of a readFn counter in the results of a run.
func counter(t *testing.T, pr beam.PipelineResult, name string) int64 {
	t.Helper()
	var n int64
	found := false
	for _, c := range pr.Metrics().Query(func(r metrics.SingleResult) bool {
		return r.Namespace() == MetricsNamespace && r.Name() == name
	}).Counters() {
		n += max(c.Attempted, c.Committed)
		found = true
	}
	if !found {
		t.Fatalf("no counter %s/%s in the results", MetricsNamespace, name)
	}
	return n
}

// ReadParquet on prism against the fake server: 3 files of 12 row groups
// each. Every row written is read exactly once with its values; the runner
// processes more restrictions than there are files (the read is really
// split), every unit is read once, and the batches reach the next stage
// through the Arrow IPC coder.
func TestReadParquetOnPrism(t *testing.T) {
	const files, groups, per = 3, 12, 500
	startServer(t, testFiles(t, files, groups, per))
	sink := t.Name()

	p, s := beam.NewPipelineWithRoot()
	batches := ReadParquet(s, testURL, testPattern, &ReadOptions{TargetBlockBytes: 1, SplitBytes: 1, BatchRows: 200})
	beam.ParDo0(s, &collectFn{Sink: sink}, beam.Reshuffle(s, batches))
	pr, err := ptest.RunWithMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	sinks.Lock()
	rows := sinks.rows[sink]
	sinks.Unlock()
	checkRows(t, rows, files*groups*per)

	restrictions, units := counter(t, pr, MetricRestrictions), counter(t, pr, MetricUnits)
	t.Logf("%d files, %d units, %d restrictions processed, %d rows", files, units, restrictions, len(rows))
	if restrictions <= files {
		t.Fatalf("%d restrictions processed for %d files: the read was not split", restrictions, files)
	}
	if units != files*groups {
		t.Fatalf("%d units read, the plan has %d", units, files*groups)
	}
	if n := counter(t, pr, MetricRows); n != files*groups*per {
		t.Fatalf("rows counter %d, want %d", n, files*groups*per)
	}
}
