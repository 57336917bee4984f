package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/internal/leaktest"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

func TestMain(m *testing.M) {
	// No test may fall through to a real credentials lookup (which would
	// ask the GCE metadata server): without an emulator, gs:// URLs find
	// this missing file and stop there.
	os.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/gcscat-test-credentials.json")
	leaktest.VerifyTestMain(m)
}

const testBucket = "bkt"

// fake is the in-process fake GCS with the test objects, with gs:// URLs
// pointed at it. Tests that use it must not be parallel (environment).
type fake struct {
	srv     *testserver.Test
	objects map[string][]byte
	gens    map[string]int64
}

func startFake(t *testing.T) *fake {
	t.Helper()
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{testBucket}})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	srv.SetEmulatorEnv(t)
	f := &fake{srv: srv, objects: map[string][]byte{
		// Not a multiple of any read or part size.
		"big.bin":       testkit.RandomBytes(5<<20+12345, 1),
		"small.txt":     []byte("hello, gcscat\nsecond line\n"),
		"empty":         {},
		"dir/a.txt":     []byte("a\n"),
		"dir/sub/b.txt": []byte("bb\n"),
	}, gens: map[string]int64{}}
	for name, data := range f.objects {
		f.gens[name] = srv.Put(t, name, data)
	}
	return f
}

// errCase is a gcscat command line that fails: its exit status and what
// its stderr must contain.
type errCase struct {
	args []string
	code int
	want string
}

// result is what one gcscat run printed and returned.
type result struct {
	stdout, stderr string
	out            []byte
	err            error
	code           int
}

func gcscat(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), out: stdout.Bytes(), err: err, code: exitCode(err)}
}

// check fails the test unless the run exited with code and its stderr
// contains want.
func (r result) check(t *testing.T, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not contain %q:\n%s", want, r.stderr)
	}
}

func TestExitCode(t *testing.T) {
	usage := &usageError{cmd: "cat", msg: "bad"}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usage, 2},
		{fmt.Errorf("wrapped: %w", usage), 2},
		{errors.Join(errors.New("x"), usage), 2},
		{&helpRequest{}, 0},
		{errors.New("boom"), 1},
		{&credentialsError{}, 1},
		{objErr("gs://b/o", os.ErrNotExist), 1},
		{context.Canceled, 1},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestUsage(t *testing.T) {
	r := gcscat(t)
	r.check(t, 2, "gcscat: no command given\n\ngcscat reads")
	for _, c := range []string{"cat", "ls", "stat", "parquet", "bench", "demo"} {
		if !strings.Contains(r.stderr, "  "+c+" ") {
			t.Errorf("main usage does not list %s:\n%s", c, r.stderr)
		}
	}

	r = gcscat(t, "orc", "gs://b/x")
	r.check(t, 2, `gcscat: unknown command "orc"`)

	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r = gcscat(t, args...)
		r.check(t, 0, "")
		if !strings.Contains(r.stdout, "Commands:") || r.stderr != "" {
			t.Errorf("gcscat %v: stdout %q, stderr %q", args, r.stdout, r.stderr)
		}
	}
	for _, c := range []string{"cat", "ls", "stat", "parquet", "bench", "demo"} {
		for _, args := range [][]string{{c, "-h"}, {"help", c}} {
			r = gcscat(t, args...)
			r.check(t, 0, "")
			if !strings.HasPrefix(r.stdout, "Usage: gcscat "+c+" ") {
				t.Errorf("gcscat %v: stdout %q", args, r.stdout)
			}
		}
	}
	r = gcscat(t, "cat", "-h")
	for _, flag := range []string{"-r range", "-head N", "-tail N", "-pool-size n", "-concurrency n", "-max-prefetch size", "-zonal mode", "-grpc", "-stats"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("cat usage lacks %s:\n%s", flag, r.stdout)
		}
	}
	r = gcscat(t, "bench", "-h")
	for _, flag := range []string{"-block-size size", "-max-prefetch size", "-read-size size", "-readahead size", "-zonal mode", "-grpc", "-stats"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("bench usage lacks %s:\n%s", flag, r.stdout)
		}
	}

	// A usage error prints the message, then the command's usage.
	r = gcscat(t, "ls", "--bogus", "gs://bkt")
	r.check(t, 2, "gcscat ls: flag provided but not defined: -bogus")
	if !strings.Contains(r.stderr, "Usage: gcscat ls") || r.stdout != "" {
		t.Errorf("stderr %q stdout %q", r.stderr, r.stdout)
	}
}

// Flags may follow the URLs; "--" ends the flags.
func TestInterspersedFlags(t *testing.T) {
	f := startFake(t)
	r := gcscat(t, "cat", "gs://bkt/small.txt", "-r", "0-4")
	r.check(t, 0, "")
	if r.stdout != "hello" {
		t.Fatalf("stdout %q", r.stdout)
	}
	r = gcscat(t, "cat", "--", "gs://bkt/small.txt")
	r.check(t, 0, "")
	if r.stdout != string(f.objects["small.txt"]) {
		t.Fatalf("stdout %q", r.stdout)
	}
	r = gcscat(t, "cat", "gs://bkt/small.txt", "--", "-r")
	r.check(t, 2, `bad URL "-r"`)
}
