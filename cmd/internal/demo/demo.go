// Package demo is the tour of gcscat that `make demo` runs: it starts the
// in-process fake GCS servers of internal/testserver, fills a bucket with
// sample objects and runs gcscat commands against them, printing each
// command line and what it shows. It lives apart from cmd/gcscat so that
// the shipped gcscat binary does not link the fake servers: cmd/gcscat-demo
// runs the tour against a gcscat binary, gcscat's tests against gcscat's
// code in-process.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zonalread/zonalread/internal/bytesize"
	"github.com/zonalread/zonalread/internal/testserver"
)

// Doc says what the tour does, for a usage text.
const Doc = `Starts in-process fake GCS servers (fake-gcs-server for the JSON/XML API and
a gRPC BidiReadObject server for multi-range downloaders), writes sample
objects into bucket "demo", and runs a short tour of the gcscat commands
against them, printing each command line and what it shows. It needs no
network and no credentials: it points gs:// at the fakes through
STORAGE_EMULATOR_HOST and STORAGE_EMULATOR_HOST_GRPC for the tour's duration.`

const demoBucket = "demo"

// Runner runs gcscat with args (without the program name), its output on
// stdout and stderr, and returns its exit status.
type Runner func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Options are the tour's settings. Register sets the defaults; a zero
// BigSize is out of range, not a default, so that -size 0 is an error.
type Options struct {
	// BigSize is the size of the big sample object, 1 byte to MaxBigSize.
	BigSize bytesize.Value
}

// DefaultBigSize is the default Options.BigSize; MaxBigSize the largest.
const (
	DefaultBigSize = 64 << 20
	MaxBigSize     = 1 << 30
)

// ErrUsage is wrapped by the errors of a bad command line.
var ErrUsage = errors.New("usage")

// Register adds the tour's flags to fs, with their defaults.
func (o *Options) Register(fs *flag.FlagSet) {
	o.BigSize = DefaultBigSize
	fs.Var(&o.BigSize, "size", "`size` of the big sample object")
}

// Check returns an error wrapping ErrUsage if an option is out of range.
func (o *Options) Check() error {
	if o.BigSize <= 0 || o.BigSize > MaxBigSize {
		return fmt.Errorf("%w: --size must be between 1 byte and %s", ErrUsage, bytesize.Format(MaxBigSize))
	}
	return nil
}

// Run runs the tour, printing it on stdout; each gcscat command line of
// the tour runs through the gcscat Runner. It returns an error if the servers fail to start or if a step's
// exit status or bytes are not what the tour expects. It sets the
// emulator variables while it runs and restores them before it returns.
func Run(ctx context.Context, o Options, stdout io.Writer, gcscat Runner) error {
	if err := o.Check(); err != nil {
		return err
	}
	t0 := time.Now()
	std := testserver.ProfileStandard
	srv, err := testserver.Start(&testserver.Options{Buckets: []string{demoBucket}, Shape: std})
	if err != nil {
		return err
	}
	defer srv.Close()
	objects := demoObjects(int(o.BigSize))
	for _, o := range objects {
		if _, err := srv.PutObject(demoBucket, o.name, o.data); err != nil {
			return err
		}
	}
	restore := setenv(map[string]string{
		"STORAGE_EMULATOR_HOST":      strings.TrimPrefix(srv.HTTPURL(), "http://"),
		"STORAGE_EMULATOR_HOST_GRPC": srv.GRPCAddr(),
	})
	defer restore()

	d := &tour{ctx: ctx, out: stdout, gcscat: gcscat}
	fmt.Fprintf(stdout, "gcscat demo: fake GCS running in the demo's process\n")
	fmt.Fprintf(stdout, "  JSON/XML API at %s, gRPC API at %s\n", srv.HTTPURL(), srv.GRPCAddr())
	fmt.Fprintf(stdout, "  link shaped like a regional bucket seen from a VM: %s\n", shapeString(std))
	fmt.Fprintf(stdout, "  bucket gs://%s holds %d sample objects\n", demoBucket, len(objects))
	d.basics(objects[0].data)

	zonal := testserver.ProfileZonal
	srv.HTTP.SetShape(zonal)
	srv.GRPC.SetShape(zonal)
	fmt.Fprintf(stdout, "\n# The link is now shaped like a Rapid (zonal) bucket in the same zone: %s.\n", shapeString(zonal))
	d.step("The same object read over gRPC multi-range downloaders (--zonal on).", 0, "bench", "--zonal", "on", bigURL)
	d.mistakes()

	fmt.Fprintf(stdout, "\nDone in %s. Try it on a real bucket (Application Default Credentials):\n", time.Since(t0).Round(10*time.Millisecond))
	fmt.Fprintf(stdout, "  gcscat cat gs://BUCKET/OBJECT   gcscat bench gs://BUCKET/OBJECT   gcscat -h\n")
	if d.failed != nil {
		return fmt.Errorf("demo: %w", d.failed)
	}
	return nil
}

const bigURL = "gs://demo/big.bin"

// basics tours ls, stat, cat, parquet and bench on the standard link; big
// is the big object's data.
func (d *tour) basics(big []byte) {
	d.step("What is at the top of the bucket: objects, and prefixes ending in /.", 0, "ls", "gs://demo")
	d.step("Everything below it, with size, generation and update time.", 0, "ls", "-l", "-R", "gs://demo")
	d.step("One object's metadata.", 0, "stat", bigURL)
	d.step("A small text object, byte for byte.", 0, "cat", "gs://demo/hello.txt")
	d.step("A byte range: the first 120 bytes of a CSV (END is inclusive).", 0, "cat", "-r", "0-119", "gs://demo/data/2024/01/measurements.csv")
	d.step("The last 200 bytes of a log (bytes, not lines: it starts mid-line).", 0, "cat", "--tail", "200", "gs://demo/logs/app.log")
	d.step("A Parquet file: schema and row groups from its footer (one ranged read), and its first rows.", 0, "parquet", "--rows", "5", "gs://demo/data/trips.parquet")
	d.hashStep(fmt.Sprintf("The whole %s object, in parallel windows, piped to sha256sum; --stats prints the read counters.", bytesize.Format(int64(len(big)))),
		big, "cat", "--stats", bigURL)
	d.step("Read strategies side by side on this link; each one's bytes are checked with sha256.", 0, "bench", bigURL)
}

// mistakes shows the one-line errors and their exit statuses.
func (d *tour) mistakes() {
	fmt.Fprintf(d.out, "\n# Mistakes get one clear line: exit status 1 for errors, 2 for usage errors.\n")
	d.step("", 1, "cat", "gs://demo/no-such-object.txt")
	d.step("", 1, "cat", "-r", "5000-", "gs://demo/hello.txt")
	d.step("", 2, "cat", "--head", "10", "--tail", "10", "gs://demo/hello.txt")
	d.step("", 2, "ls", "s3://demo/")
}

type demoObject struct {
	name string
	data []byte
}

// demoObjects makes the sample objects; the big binary one comes first.
func demoObjects(bigSize int) []demoObject {
	rng := rand.New(rand.NewChaCha8([32]byte{'g', 'c', 's', 'c', 'a', 't'}))
	big := make([]byte, bigSize)
	for i := 0; i < len(big); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(big); j++ {
			big[i+j] = byte(v >> (8 * j))
		}
	}
	hello := "Hello from gcscat!\n" +
		"This object lives in a fake GCS bucket inside the demo's process.\n" +
		"Every byte cat writes is the object's byte: compare with sha256sum.\n"
	csv := func(month int) []byte {
		var b bytes.Buffer
		b.WriteString("timestamp,sensor,temperature_c,humidity_pct\n")
		t := time.Date(2024, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		for i := range 500 {
			fmt.Fprintf(&b, "%s,sensor-%02d,%.1f,%d\n", t.Add(time.Duration(i)*time.Minute).Format(time.RFC3339),
				i%7, 15+10*rng.Float64(), 30+rng.IntN(60))
		}
		return b.Bytes()
	}
	var logs bytes.Buffer
	levels := []string{"INFO", "INFO", "INFO", "WARN", "DEBUG"}
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 300 {
		fmt.Fprintf(&logs, "%s %-5s request %d served in %d ms\n", t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339),
			levels[i%len(levels)], i, 1+rng.IntN(40))
	}
	return []demoObject{
		{"big.bin", big},
		{"hello.txt", []byte(hello)},
		{"data/2024/01/measurements.csv", csv(1)},
		{"data/2024/02/measurements.csv", csv(2)},
		{"logs/app.log", logs.Bytes()},
		{"data/trips.parquet", TripsParquet(rng)},
	}
}

// TripsParquet is the tour's sample Parquet file: 5000 rows in 5 row
// groups. It is exported for gcscat's parquet tests, which read the same
// file.
func TripsParquet(rng *rand.Rand) []byte {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "trip_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "city", Type: arrow.BinaryTypes.String},
		{Name: "km", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	cities := []string{"Paris", "Lagos", "Lima", "Osaka", "Oslo"}
	for i := range 5000 {
		b.Field(0).(*array.Int64Builder).Append(int64(100000 + i))
		b.Field(1).(*array.StringBuilder).Append(cities[rng.IntN(len(cities))])
		b.Field(2).(*array.Float64Builder).Append(float64(int(rng.Float64()*3000)) / 100)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	if err := pqarrow.WriteTable(tbl, &buf, 1000, props, pqarrow.DefaultWriterProps()); err != nil {
		panic(err) // in-memory write of a fixed table cannot fail
	}
	return buf.Bytes()
}

// tour runs steps through gcscat and prints them like a terminal session.
type tour struct {
	ctx    context.Context
	out    io.Writer
	gcscat Runner
	failed error
}

// step runs gcscat args, prints its output, and checks its exit status.
func (d *tour) step(comment string, wantCode int, args ...string) {
	var stdout, stderr bytes.Buffer
	code := d.exec(comment, wantCode, "", &stdout, &stderr, args)
	d.out.Write(stdout.Bytes())
	if stdout.Len() > 0 && !bytes.HasSuffix(stdout.Bytes(), []byte("\n")) {
		io.WriteString(d.out, "\n[no newline at the end of the output]\n")
	}
	d.printStderr(stderr.String(), code == 2)
	d.printCode(code)
}

// hashStep runs gcscat args with stdout piped into sha256 and compares the
// sum with data's.
func (d *tour) hashStep(comment string, data []byte, args ...string) {
	h := sha256.New()
	var stderr bytes.Buffer
	t := time.Now()
	code := d.exec(comment, 0, " | sha256sum", h, &stderr, args)
	took := time.Since(t)
	got, want := hex.EncodeToString(h.Sum(nil)), sha256.Sum256(data)
	fmt.Fprintf(d.out, "%s  -\n", got)
	d.printStderr(stderr.String(), false)
	d.printCode(code)
	same := "identical"
	if got != hex.EncodeToString(want[:]) {
		same = "DIFFERENT"
		d.failed = fmt.Errorf("cat output differs from the object")
	}
	fmt.Fprintf(d.out, "# (%s in %s; the object's own sha256 is %x: %s)\n", bytesize.Format(int64(len(data))), took.Round(time.Millisecond), want[:4], same)
}

func (d *tour) exec(comment string, wantCode int, pipe string, stdout, stderr io.Writer, args []string) int {
	if comment != "" {
		fmt.Fprintf(d.out, "\n# %s\n", comment)
	}
	fmt.Fprintf(d.out, "$ gcscat %s%s\n", strings.Join(args, " "), pipe)
	code := d.gcscat(d.ctx, args, stdout, stderr)
	if code != wantCode && d.failed == nil {
		d.failed = fmt.Errorf("gcscat %s: exit status %d, want %d", strings.Join(args, " "), code, wantCode)
	}
	return code
}

func (d *tour) printCode(code int) {
	if code != 0 {
		fmt.Fprintf(d.out, "[exit status %d]\n", code)
	}
}

// printStderr prints a step's stderr; for a usage error only its first line
// (the usage text that follows it is long).
func (d *tour) printStderr(s string, firstLine bool) {
	if s == "" {
		return
	}
	if firstLine {
		line, _, _ := strings.Cut(s, "\n")
		fmt.Fprintf(d.out, "%s\n[... usage of the command follows]\n", line)
		return
	}
	io.WriteString(d.out, s)
}

func shapeString(s testserver.Shape) string {
	return fmt.Sprintf("%s to first byte, %s/s per stream, %s/s in all",
		s.Latency, bytesize.Format(s.ConnBandwidth), bytesize.Format(s.AggregateBandwidth))
}

// setenv sets environment variables and returns what restores them.
func setenv(kv map[string]string) (restore func()) {
	old := map[string]*string{}
	for k, v := range kv {
		if o, ok := os.LookupEnv(k); ok {
			old[k] = &o
		} else {
			old[k] = nil
		}
		os.Setenv(k, v)
	}
	return func() {
		for k, o := range old {
			if o == nil {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, *o)
			}
		}
	}
}
