// Command groupstats is a Beam pipeline that reads a Parquet dataset with
// beamio.ReadParquet and computes per-key aggregates of one numeric column:
// rows, sum, mean, min and max of -value for each distinct -key.
//
// Without -input it runs on the demo data: a fake GCS server started in this
// process holds four files of trips (5 row groups each, the gcscat demo's
// trips.parquet with four seeds), and the pipeline runs on prism, in this
// process too. With -input it reads a real bucket on any runner:
//
//	go run ./examples/groupstats                       # demo data, prism
//	go run ./examples/groupstats -input 'gs://BUCKET?zonal=true' -pattern 'trips/*.parquet' \
//	    -key city -value km -output gs://BUCKET/out/stats \
//	    --runner=dataflow --project=PROJECT --region=REGION \
//	    --staging_location=gs://BUCKET/staging --temp_location=gs://BUCKET/tmp
//
// Results go to -output (text, one line per key, through Beam's textio)
// or, without it, to standard output in key order.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/metrics"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/zonalread/zonalread/beamio"
)

var (
	input   = flag.String("input", "", "filesystem URL of the dataset (gs://BUCKET, gs://BUCKET?zonal=true, file:///DIR); empty: the demo data on a fake server in this process")
	pattern = flag.String("pattern", "trips/*.parquet", "files to read, a path.Match pattern relative to -input")
	key     = flag.String("key", "city", "column to group by")
	value   = flag.String("value", "km", "numeric column to aggregate")
	output  = flag.String("output", "", "text file prefix for the results (any Beam filesystem: gs://, local); empty: print them")
	target  = flag.Int64("target_block_bytes", 0, "merge a file's small row groups into plan units up to this many bytes (0: beamio's default; 1 with the demo data: a unit per row group)")
	verbose = flag.Bool("v", false, "log the runner's progress (prism logs every job state at level INFO)")
	split   = flag.Int64("split_bytes", 0, "first split of the read into restrictions of about this many bytes (0: beamio's default; 64 KiB with the demo data)")
)

func init() {
	register.DoFn2x1[beamio.Batch, func(string, float64), error](&keyValueFn{})
	register.Emitter2[string, float64]()
	register.Function2x1[string, stats, string](formatStats)
	register.Function2x0[int, func(*string) bool](printSorted)
	register.Iter1[string]()
	register.Combiner3[stats, float64, stats](&statsFn{})
	beam.RegisterType(reflect.TypeOf(stats{}))
}

func main() {
	flag.Parse()
	beam.Init()
	if !*verbose {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	ctx := context.Background()
	fsURL := *input
	if fsURL == "" {
		srv, err := startDemo()
		if err == nil {
			err = os.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.HTTPURL(), "http://"))
		}
		if err != nil {
			log.Fatalf("groupstats: demo data: %v", err)
		}
		defer srv.Close()
		fsURL = demoURL
		if *target == 0 && *split == 0 {
			*target, *split = 1, 64<<10 // small files: split them anyway
		}
		fmt.Printf("groupstats: demo data: %s, %s: %d files of %d row groups on a fake GCS server in this process\n", fsURL, *pattern, demoFiles, demoRowGroups)
	}
	p, s := beam.NewPipelineWithRoot()
	opts := &beamio.ReadOptions{Columns: []string{*key, *value}, TargetBlockBytes: *target, SplitBytes: *split}
	lines := beam.ParDo(s, formatStats, groupStats(s, fsURL, *pattern, *key, *value, opts))
	if *output != "" {
		textio.Write(s, *output, lines)
	} else {
		beam.ParDo0(s, printSorted, beam.GroupByKey(s, beam.AddFixedKey(s, lines)))
	}
	pr, err := beamx.RunWithMetrics(ctx, p)
	if err != nil {
		log.Fatalf("groupstats: %v", err)
	}
	if pr != nil {
		fmt.Println(readCounters(pr))
	}
}

// readCounters reports beamio's counters from the results of a run.
func readCounters(pr beam.PipelineResult) string {
	n := map[string]int64{}
	for _, c := range pr.Metrics().Query(func(r metrics.SingleResult) bool { return r.Namespace() == beamio.MetricsNamespace }).Counters() {
		n[c.Key.Name] += max(c.Attempted, c.Committed)
	}
	return fmt.Sprintf("beamio: %d rows from %d plan units in %d restrictions", n[beamio.MetricRows], n[beamio.MetricUnits], n[beamio.MetricRestrictions])
}

// groupStats reads the dataset and returns the stats of column value per
// distinct value of column key: a PCollection<KV<string, stats>>.
func groupStats(s beam.Scope, fsURL, pattern, key, value string, opts *beamio.ReadOptions) beam.PCollection {
	batches := beamio.ReadParquet(s, fsURL, pattern, opts)
	pairs := beam.ParDo(s, &keyValueFn{Key: key, Value: value}, batches)
	return beam.CombinePerKey(s, &statsFn{}, pairs)
}

// keyValueFn turns each row of a batch into (key, value).
type keyValueFn struct{ Key, Value string }

// ProcessElement emits the key and value of every row of b whose value is
// not null (a null key is "null").
func (fn *keyValueFn) ProcessElement(b beamio.Batch, emit func(string, float64)) error {
	rec := b.Record
	k, v := column(rec, fn.Key), column(rec, fn.Value)
	if k == nil || v == nil {
		return fmt.Errorf("groupstats: %s: batch lacks column %q or %q", b.Source, fn.Key, fn.Value)
	}
	num, err := numbers(v)
	if err != nil {
		return fmt.Errorf("groupstats: %s: column %q: %w", b.Source, fn.Value, err)
	}
	for i := range int(rec.NumRows()) {
		if v.IsValid(i) {
			emit(k.ValueStr(i), num(i))
		}
	}
	return nil
}

// column is rec's column called name, nil if it has none.
func column(rec arrow.RecordBatch, name string) arrow.Array {
	if idx := rec.Schema().FieldIndices(name); len(idx) == 1 {
		return rec.Column(idx[0])
	}
	return nil
}

// numbers reads a numeric column as float64 (the dataset's schema widens
// int32 and float32 to int64 and float64).
func numbers(a arrow.Array) (func(int) float64, error) {
	switch a := a.(type) {
	case *array.Float64:
		return a.Value, nil
	case *array.Int64:
		return func(i int) float64 { return float64(a.Value(i)) }, nil
	}
	return nil, fmt.Errorf("type %s is not numeric", a.DataType())
}

// stats are the aggregates of one key.
type stats struct {
	Rows          int64
	Sum, Min, Max float64
}

// statsFn combines values into stats.
type statsFn struct{}

// CreateAccumulator is the stats of no value.
func (statsFn) CreateAccumulator() stats { return stats{} }

// AddInput adds v.
func (statsFn) AddInput(a stats, v float64) stats {
	if a.Rows == 0 || v < a.Min {
		a.Min = v
	}
	if a.Rows == 0 || v > a.Max {
		a.Max = v
	}
	a.Rows++
	a.Sum += v
	return a
}

// MergeAccumulators merges the stats of two sets of values.
func (statsFn) MergeAccumulators(a, b stats) stats {
	switch {
	case a.Rows == 0:
		return b
	case b.Rows == 0:
		return a
	}
	return stats{Rows: a.Rows + b.Rows, Sum: a.Sum + b.Sum, Min: min(a.Min, b.Min), Max: max(a.Max, b.Max)}
}

// formatStats is one line of the results.
func formatStats(k string, s stats) string {
	return fmt.Sprintf("%-12s rows %7d  sum %12.2f  mean %8.3f  min %8.2f  max %8.2f", k, s.Rows, s.Sum, s.Sum/float64(s.Rows), s.Min, s.Max)
}

// printSorted prints every line, sorted.
func printSorted(_ int, lines func(*string) bool) {
	var all []string
	var l string
	for lines(&l) {
		all = append(all, l)
	}
	slices.Sort(all)
	fmt.Fprintln(os.Stdout, strings.Join(all, "\n"))
}
