package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/cmd/internal/demo"
)

var benchRow = regexp.MustCompile(`(?m)^(one stream|naive range reads|prefetch engine|parallel whole object) +(\d+\.\d) +(\d+\.\d\dx) +\S+ +\S+ +(\d+\.\d\d) +ok$`)

// checkBench checks the table: four rows, every strategy's bytes ok, and
// no strategy fetching more than maxRatio bytes per byte used.
func checkBench(t *testing.T, r result, maxRatio float64) {
	t.Helper()
	r.check(t, 0, "")
	rows := benchRow.FindAllStringSubmatch(r.stdout, -1)
	if len(rows) != 4 || !strings.Contains(r.stdout, "STRATEGY") {
		t.Fatalf("bench table:\n%s", r.stdout)
	}
	for _, row := range rows {
		if v, _ := strconv.ParseFloat(row[4], 64); v > maxRatio {
			t.Errorf("%s fetched %s bytes per byte used:\n%s", row[1], row[4], r.stdout)
		}
	}
}

func TestBench(t *testing.T) {
	f := startFake(t)
	r := gcscat(t, "bench", "gs://bkt/big.bin")
	checkBench(t, r, 1)
	if !strings.HasPrefix(r.stdout, "bench gs://bkt/big.bin: 5255225 bytes (5.0 MiB); gcsfs backend: ranged reads\n") {
		t.Errorf("header:\n%s", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}

	f.srv.GRPC.ResetStats()
	r = gcscat(t, "bench", "--zonal", "on", "--stats", "--read-size", "256KiB", "--readahead", "0", "gs://bkt/big.bin")
	checkBench(t, r, 1)
	if !strings.Contains(r.stdout, "gcsfs backend: gRPC multi-range downloaders") || f.srv.GRPC.Stats().Bytes == 0 {
		t.Errorf("not read over gRPC:\n%s", r.stdout)
	}
	r.check(t, 0, "stats gs://bkt (gRPC multi-range downloaders):")

	// Odd sizes: reads and readahead that do not divide the object; a read
	// that runs past the naive cache keeps the cached part (fsspec's partial
	// hit) and fetches only the rest.
	r = gcscat(t, "bench", "--read-size", "333333", "--readahead", "1MiB", "--concurrency", "3",
		"--pool-size", "3", "--block-size", "256KiB", "--max-prefetch", "2MiB", "gs://bkt/big.bin")
	checkBench(t, r, 1.1)
	r = gcscat(t, "bench", "gs://bkt/small.txt")
	checkBench(t, r, 1)
	r = gcscat(t, "bench", "gs://bkt/empty")
	r.check(t, 0, "")
	if !strings.Contains(r.stdout, "0 bytes (0 B)") {
		t.Errorf("empty object:\n%s", r.stdout)
	}
}

func TestBenchErrors(t *testing.T) {
	startFake(t)
	for _, tc := range []errCase{
		{[]string{}, 2, "gcscat bench: want exactly one URL, got 0"},
		{[]string{"gs://bkt/a", "gs://bkt/b"}, 2, "want exactly one URL, got 2"},
		{[]string{"gs://bkt"}, 2, "names a bucket or directory"},
		{[]string{"--read-size", "0", "gs://bkt/big.bin"}, 2, "--read-size must be positive"},
		{[]string{"--zonal", "sideways", "gs://bkt/big.bin"}, 2, "--zonal must be auto, on or off"},
		{[]string{"gs://bkt/nope"}, 1, "gcscat: gs://bkt/nope: no such object\n"},
		{[]string{"gs://bkt/dir"}, 1, "gs://bkt/dir: is a prefix, not an object"},
	} {
		r := gcscat(t, append([]string{"bench"}, tc.args...)...)
		r.check(t, tc.code, tc.want)
	}
}

// The demo (cmd/gcscat-demo) runs its whole tour of this gcscat, in
// process, against its own fakes (with a smaller big object), checks every
// step's exit status and the sha256 of the big cat, and restores the
// environment.
func TestDemo(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "before:1")
	os.Unsetenv("STORAGE_EMULATOR_HOST_GRPC")
	t.Cleanup(func() { os.Unsetenv("STORAGE_EMULATOR_HOST_GRPC") })
	inProcess := func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return exitCode(run(ctx, args, stdout, stderr))
	}
	var stdout bytes.Buffer
	err := demo.Run(context.Background(), demo.Options{BigSize: 3 << 20}, &stdout, inProcess)
	r := result{stdout: stdout.String(), err: err}
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, r.stdout)
	}
	for _, want := range []string{
		"$ gcscat ls gs://demo\ngs://demo/big.bin\ngs://demo/data/\ngs://demo/hello.txt\ngs://demo/logs/\n",
		"$ gcscat ls -l -R gs://demo\n",
		"TOTAL: 6 objects", "5000 rows in 5 row groups", "first 5 rows:",
		"$ gcscat stat gs://demo/big.bin\ngs://demo/big.bin:\n",
		"$ gcscat cat gs://demo/hello.txt\nHello from gcscat!\n",
		"$ gcscat cat -r 0-119 gs://demo/data/2024/01/measurements.csv\ntimestamp,sensor,temperature_c,humidity_pct\n",
		"$ gcscat cat --tail 200 gs://demo/logs/app.log\n",
		"$ gcscat cat --stats gs://demo/big.bin | sha256sum\n",
		"stats gs://demo (ranged reads):",
		": identical)",
		"$ gcscat bench gs://demo/big.bin\n",
		"gcsfs backend: ranged reads",
		"$ gcscat bench --zonal on gs://demo/big.bin\n",
		"gcsfs backend: gRPC multi-range downloaders",
		"gcscat: gs://demo/no-such-object.txt: no such object\n[exit status 1]\n",
		"range start 5000 is past the end of the object (153 bytes)\n[exit status 1]\n",
		"gcscat cat: --head and --tail cannot be used together: give one of -r, --head, --tail\n[... usage of the command follows]\n[exit status 2]\n",
		"[exit status 2]\n\nDone in ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if n := len(benchRow.FindAllString(r.stdout, -1)); n != 8 {
		t.Errorf("demo shows %d ok bench rows, want 8", n)
	}
	if strings.Contains(r.stdout, "MISMATCH") || strings.Contains(r.stdout, "DIFFERENT") || r.stderr != "" {
		t.Errorf("demo output:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", r.stdout)
	}
	if got := os.Getenv("STORAGE_EMULATOR_HOST"); got != "before:1" {
		t.Errorf("STORAGE_EMULATOR_HOST = %q after the demo", got)
	}
	if _, ok := os.LookupEnv("STORAGE_EMULATOR_HOST_GRPC"); ok {
		t.Error("STORAGE_EMULATOR_HOST_GRPC left set after the demo")
	}

	if err := demo.Run(context.Background(), demo.Options{}, &stdout, inProcess); !errors.Is(err, demo.ErrUsage) ||
		!strings.Contains(err.Error(), "--size must be between 1 byte and 1.0 GiB") {
		t.Errorf("demo with size 0: %v", err)
	}
	// gcscat itself only says where the demo is.
	r = gcscat(t, "demo")
	r.check(t, 2, "the demo is a separate program: run 'make demo'")
}
