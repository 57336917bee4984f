package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/zonalread/zonalread/internal/testkit"
)

// sameBytes fails unless got is want, byte for byte (and by sha256).
// Whole objects, over ranged reads and over gRPC multi-range downloaders
// (chosen by flag or by URL), are written byte for byte.
func TestCatWholeObject(t *testing.T) {
	f := startFake(t)
	big := f.objects["big.bin"]
	for _, tc := range []struct {
		name string
		args []string
		grpc bool
	}{
		{"http", []string{"gs://bkt/big.bin"}, false},
		{"zonal-off", []string{"--zonal", "off", "gs://bkt/big.bin"}, false},
		{"zonal-on", []string{"--zonal", "on", "gs://bkt/big.bin"}, true},
		{"grpc", []string{"--grpc", "gs://bkt/big.bin"}, true},
		{"url-zonal", []string{"gs://bkt/big.bin?zonal=true"}, true},
		{"url-wins", []string{"--zonal", "on", "gs://bkt/big.bin?zonal=false"}, false},
		{"small-knobs", []string{"--pool-size", "2", "--concurrency", "3", "--max-prefetch", "1MiB", "gs://bkt/big.bin"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.srv.GRPC.ResetStats()
			r := gcscat(t, append([]string{"cat"}, tc.args...)...)
			r.check(t, 0, "")
			if r.stderr != "" {
				t.Errorf("stderr: %q", r.stderr)
			}
			testkit.SameBytes(t, "output", r.out, big)
			if got := f.srv.GRPC.Stats().Bytes > 0; got != tc.grpc {
				t.Errorf("read over gRPC: %v, want %v", got, tc.grpc)
			}
		})
	}
}

func TestCatRanges(t *testing.T) {
	f := startFake(t)
	big := f.objects["big.bin"]
	size := int64(len(big))
	n := strconv.FormatInt
	for _, tc := range []struct {
		args    []string
		off, to int64 // the bytes [off, to) of big
	}{
		{[]string{"-r", "0-9"}, 0, 10},
		{[]string{"-r", "5-5"}, 5, 6},
		{[]string{"-r", "100-3000000"}, 100, 3000001},         // bounded, through the prefetch engine
		{[]string{"-r", "1000-" + n(size-1, 10)}, 1000, size}, // to the last byte: WriteTo
		{[]string{"-r", "1000-" + n(size+5000, 10)}, 1000, size},
		{[]string{"-r", "1048576-"}, 1 << 20, size},
		{[]string{"-r", n(size-1, 10) + "-"}, size - 1, size},
		{[]string{"-r", "-100"}, size - 100, size},
		{[]string{"-r", "-" + n(size+1, 10)}, 0, size},
		{[]string{"-r=-2097152"}, size - 2<<20, size},
		{[]string{"--head", "0"}, 0, 0},
		{[]string{"--head", "777"}, 0, 777},
		{[]string{"--head", "2500000"}, 0, 2500000},
		{[]string{"--head", n(size*2, 10)}, 0, size},
		{[]string{"--tail", "0"}, size, size},
		{[]string{"--tail", "12345"}, size - 12345, size},
		{[]string{"--tail", n(size+1, 10)}, 0, size},
	} {
		for _, zonal := range []string{"off", "on"} {
			t.Run(strings.Join(tc.args, " ")+"/zonal-"+zonal, func(t *testing.T) {
				args := append([]string{"cat", "--zonal", zonal}, tc.args...)
				r := gcscat(t, append(args, "gs://bkt/big.bin")...)
				r.check(t, 0, "")
				testkit.SameBytes(t, "output", r.out, big[tc.off:tc.to])
			})
		}
	}
}

func TestCatSmallAndEmpty(t *testing.T) {
	f := startFake(t)
	small := f.objects["small.txt"]
	for _, tc := range []struct {
		args []string
		want []byte
	}{
		{[]string{"gs://bkt/small.txt"}, small},
		{[]string{"gs://bkt/empty"}, nil},
		{[]string{"-r", "0-", "gs://bkt/empty"}, nil},
		{[]string{"-r", "0-10", "gs://bkt/empty"}, nil},
		{[]string{"-r", "-10", "gs://bkt/empty"}, nil},
		{[]string{"--tail", "5", "gs://bkt/empty"}, nil},
		{[]string{"-r", "7-12", "gs://bkt/small.txt"}, small[7:13]},
		// Several objects, one after the other, the range applied to each.
		{[]string{"gs://bkt/small.txt", "gs://bkt/dir/a.txt", "gs://bkt/empty", "gs://bkt/small.txt"}, bytes.Join([][]byte{small, []byte("a\n"), small}, nil)},
		{[]string{"--head", "1", "gs://bkt/small.txt", "gs://bkt/dir/sub/b.txt"}, []byte("hb")},
	} {
		r := gcscat(t, append([]string{"cat"}, tc.args...)...)
		r.check(t, 0, "")
		if !bytes.Equal(r.out, tc.want) {
			t.Errorf("cat %v = %q, want %q", tc.args, r.out, tc.want)
		}
	}
}

// Every bad command line exits 2 with a message naming the problem and the
// usage; every failed read exits 1 with one line. Nothing goes to stdout.
func TestCatErrors(t *testing.T) {
	startFake(t)
	for _, tc := range []errCase{
		{[]string{"gs://bkt/nope.txt"}, 1, "gcscat: gs://bkt/nope.txt: no such object\n"},
		{[]string{"gs://bkt/dir"}, 1, "gcscat: gs://bkt/dir: is a directory (a prefix), not an object: list it with gcscat ls\n"},
		{[]string{"gs://nobucket/x"}, 1, "gcscat: gs://nobucket: no such bucket\n"},
		{[]string{"--zonal", "off", "gs://nobucket/x"}, 1, "gcscat: gs://nobucket: no such bucket\n"},
		{[]string{"-r", "99999999-", "gs://bkt/big.bin"}, 1, "gcscat: gs://bkt/big.bin: range start 99999999 is past the end of the object (5255225 bytes)\n"},
		{[]string{"-r", "26-30", "gs://bkt/small.txt"}, 1, "range start 26 is past the end of the object (26 bytes)"},
		{[]string{"-r", "1-", "gs://bkt/empty"}, 1, "range start 1 is past the end of the object (0 bytes)"},
		{[]string{"-r", "5-1", "gs://bkt/small.txt"}, 2, `gcscat cat: -r "5-1": END 1 is before START 5`},
		{[]string{"-r", "abc", "gs://bkt/small.txt"}, 2, `-r "abc": want START-END, START- or -N`},
		{[]string{"-r", "1-x", "gs://bkt/small.txt"}, 2, `"x" is not a byte offset`},
		{[]string{"-r", "+1-2", "gs://bkt/small.txt"}, 2, `"+1" is not a byte offset`},
		{[]string{"-r", "-0", "gs://bkt/small.txt"}, 2, "a suffix range needs N > 0"},
		{[]string{"-r", "-", "gs://bkt/small.txt"}, 2, `"" is not a byte offset`},
		{[]string{"--head", "1", "--tail", "1", "gs://bkt/small.txt"}, 2, "gcscat cat: --head and --tail cannot be used together"},
		{[]string{"-r", "0-1", "--head", "1", "gs://bkt/small.txt"}, 2, "-r and --head cannot be used together"},
		{[]string{"-r", "0-1", "--tail", "1", "gs://bkt/small.txt"}, 2, "-r and --tail cannot be used together"},
		{[]string{"-r", "0-1", "--head", "1", "--tail", "1", "gs://bkt/small.txt"}, 2, "-r and --head and --tail cannot"},
		{[]string{"--head", "-1", "gs://bkt/small.txt"}, 2, "--head must not be negative"},
		{[]string{"--tail", "-5", "gs://bkt/small.txt"}, 2, "--tail must not be negative"},
		{[]string{"--head", "x", "gs://bkt/small.txt"}, 2, `invalid value "x" for flag -head`},
		{[]string{"--zonal", "maybe", "gs://bkt/small.txt"}, 2, `--zonal must be auto, on or off, got "maybe"`},
		{[]string{"--grpc", "--zonal", "off", "gs://bkt/small.txt"}, 2, "--grpc and --zonal off cannot be used together"},
		{[]string{"--pool-size", "-1", "gs://bkt/small.txt"}, 2, "--pool-size must not be negative"},
		{[]string{"--concurrency", "-1", "gs://bkt/small.txt"}, 2, "--concurrency must not be negative"},
		{[]string{"--max-prefetch", "lots", "gs://bkt/small.txt"}, 2, `bad size "lots"`},
		{[]string{"--block-size", "1MiB", "gs://bkt/small.txt"}, 2, "flag provided but not defined: -block-size"},
		{[]string{}, 2, "gcscat cat: no URL given"},
		{[]string{"--nope", "gs://bkt/small.txt"}, 2, "flag provided but not defined: -nope"},
		// Bad URLs.
		{[]string{"gs://bkt"}, 2, `bad URL "gs://bkt": names a bucket or directory, not an object`},
		{[]string{"gs://bkt/"}, 2, "names a bucket or directory"},
		{[]string{"gs://"}, 2, `bad URL "gs://": no bucket name`},
		{[]string{"gs:///x"}, 2, "no bucket name"},
		{[]string{"gs://Bad_Bucket/x"}, 2, `"Bad_Bucket" is not a valid bucket name`},
		{[]string{"gs://ab/x"}, 2, `"ab" is not a valid bucket name`},
		{[]string{"gs://-bkt/x"}, 2, "is not a valid bucket name"},
		{[]string{"gs://bkt/a/../b"}, 2, "is not an object path"},
		{[]string{"gs://bkt/a//b"}, 2, "is not an object path"},
		{[]string{"gs://bkt/x?foo=1"}, 2, `unknown query parameter "foo"`},
		{[]string{"gs://bkt/x?zonal=maybe"}, 2, `zonal="maybe"`},
		{[]string{"gs://bkt/x?anonymous=perhaps"}, 2, `anonymous="perhaps"`},
		{[]string{"s3://bkt/x"}, 2, `unsupported scheme "s3"`},
		{[]string{"mem://bkt/x"}, 2, `unsupported scheme "mem"`},
		{[]string{"bkt/x"}, 2, "no scheme (want gs://bucket/path or file:///dir/path)"},
		{[]string{"gs://bkt/%zz"}, 2, `bad URL "gs://bkt/%zz"`},
		{[]string{"file://host/x"}, 2, "file URLs name a local path"},
		// The first bad URL stops everything before any output.
		{[]string{"gs://bkt/small.txt", "gs:/"}, 2, "bad URL"},
	} {
		r := gcscat(t, append([]string{"cat"}, tc.args...)...)
		r.check(t, tc.code, tc.want)
		if r.stdout != "" {
			t.Errorf("cat %v wrote %q to stdout", tc.args, r.stdout)
		}
		lines := strings.Count(r.stderr, "\n")
		if tc.code == 1 && lines != 1 {
			t.Errorf("cat %v: want one line on stderr, got:\n%s", tc.args, r.stderr)
		}
		if tc.code == 2 && !strings.Contains(r.stderr, "Usage: gcscat cat [flags] URL...") {
			t.Errorf("cat %v: no usage on stderr:\n%s", tc.args, r.stderr)
		}
	}
}

// After an error on one URL, the objects before it have been written and
// the rest are not.
func TestCatStopsAtFirstError(t *testing.T) {
	f := startFake(t)
	r := gcscat(t, "cat", "gs://bkt/small.txt", "gs://bkt/nope", "gs://bkt/dir/a.txt")
	r.check(t, 1, "gs://bkt/nope: no such object")
	if !bytes.Equal(r.out, f.objects["small.txt"]) {
		t.Fatalf("stdout %q", r.out)
	}
}

func TestCatStats(t *testing.T) {
	f := startFake(t)
	r := gcscat(t, "cat", "--stats", "gs://bkt/big.bin")
	r.check(t, 0, "stats gs://bkt (ranged reads):\n  files 1  asked 5.0 MiB  fetched 5.0 MiB (1.00 per byte asked)")
	testkit.SameBytes(t, "output", r.out, f.objects["big.bin"])
	r = gcscat(t, "cat", "--stats", "--grpc", "-r", "0-2999999", "gs://bkt/big.bin")
	r.check(t, 0, "stats gs://bkt (gRPC multi-range downloaders):")
	for _, want := range []string{"prefetched", "served from prefetch", "wasted", "downloaders", "retries", "buffers peak"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stats lack %q:\n%s", want, r.stderr)
		}
	}
	testkit.SameBytes(t, "output", r.out, f.objects["big.bin"][:3000000])
	// Stats are printed after a failed read too.
	r = gcscat(t, "cat", "--stats", "gs://bkt/nope")
	r.check(t, 1, "stats gs://bkt")
}

func TestCatFileURL(t *testing.T) {
	dir := t.TempDir()
	data := testkit.RandomBytes(3<<20+7, 9)
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "x.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.ToSlash(filepath.Join(dir, "sub", "x.bin"))
	r := gcscat(t, "cat", url)
	r.check(t, 0, "")
	testkit.SameBytes(t, "output", r.out, data)
	r = gcscat(t, "cat", "-r", "10-1048585", url)
	r.check(t, 0, "")
	testkit.SameBytes(t, "output", r.out, data[10:1048586])
	r = gcscat(t, "cat", "file://"+filepath.ToSlash(filepath.Join(dir, "missing")))
	r.check(t, 1, "missing: no such object")
	r = gcscat(t, "cat", "--zonal", "on", url)
	r.check(t, 1, "zonal reads need a gs:// bucket")

	r = gcscat(t, "ls", "-R", "file://"+filepath.ToSlash(dir))
	r.check(t, 0, "")
	if want := url + "\n"; r.stdout != want {
		t.Fatalf("ls -R = %q, want %q", r.stdout, want)
	}
}

// Without an emulator, gs:// URLs look for Application Default
// Credentials; a missing one is one line, and nothing reaches stdout (where
// gocloud's URL opener would print a warning).
func TestMissingCredentials(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	t.Setenv("STORAGE_EMULATOR_HOST_GRPC", "")
	missing := filepath.Join(t.TempDir(), "creds.json")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", missing)
	for _, args := range [][]string{{"cat", "gs://some-bucket/obj"}, {"ls", "gs://some-bucket"}, {"stat", "gs://some-bucket/o"}, {"bench", "gs://some-bucket/o"}} {
		r := gcscat(t, args...)
		want := fmt.Sprintf("gcscat: cannot load Google Cloud credentials from GOOGLE_APPLICATION_CREDENTIALS=%s (no such file): run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS\n", missing)
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("gcscat %v: exit %d\nstdout %q\nstderr %q\nwant   %q", args, r.code, r.stdout, r.stderr, want)
		}
	}

	// A file that is there but is not credentials.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"type": "nonsense", "private_key": "SECRET"}`), 0o600)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", bad)
	r := gcscat(t, "cat", "gs://some-bucket/obj")
	r.check(t, 1, "(not a usable credentials file)")
	if strings.Contains(r.stderr, "SECRET") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q", r.stderr)
	}

	// With no variable set, the library's own message maps to the same
	// advice.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	err := errors.New("google: could not find default credentials. See https://example/adc for more information")
	if got, want := describe(fmt.Errorf("open: %w", err)), "no Google Cloud credentials found: run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
	// A rejected token never prints the token endpoint's response body.
	re := &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, Body: []byte(`{"access_token":"ya29.SECRET"}`), ErrorCode: "invalid_grant"}
	got := describe(fmt.Errorf("storage: %w", re))
	if strings.Contains(got, "SECRET") || !strings.Contains(got, "invalid_grant") || !strings.Contains(got, "gcloud auth application-default login") {
		t.Errorf("describe(RetrieveError) = %q", got)
	}
}

// The progress bar is drawn only on a terminal: never on a buffer, a pipe
// or a file, whatever the size; when drawn it passes the bytes through.
func TestProgress(t *testing.T) {
	var dst, errBuf bytes.Buffer
	if w, _ := newProgress(&dst, &errBuf, 1<<30, "x"); w != &dst {
		t.Error("progress bar on a bytes.Buffer")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if w, _ := newProgress(&dst, pw, 1<<30, "x"); w != &dst {
		t.Error("progress bar on a pipe")
	}
	if isTerminal(pw) || isTerminal(&errBuf) {
		t.Error("isTerminal true for a pipe or a buffer")
	}

	data := testkit.RandomBytes(progressMin+1000, 3)
	w, done := progressTo(&dst, &errBuf, int64(len(data)), "gs://b/o")
	for i := 0; i < len(data); i += 1 << 20 {
		w.Write(data[i:min(i+1<<20, len(data))])
	}
	done()
	testkit.SameBytes(t, "output", dst.Bytes(), data)
	if errBuf.Len() == 0 {
		t.Error("forced progress bar drew nothing")
	}
}

// Ctrl-C cancels the context: the read stops with one line.
func TestCatInterrupted(t *testing.T) {
	startFake(t)
	for _, args := range [][]string{{"cat", "gs://bkt/big.bin"}, {"cat", "--zonal", "off", "gs://bkt/big.bin"}, {"cat", "--grpc", "gs://bkt/big.bin"}, {"ls", "gs://bkt"}} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var stdout, stderr bytes.Buffer
		err := run(ctx, args, &stdout, &stderr)
		if exitCode(err) != 1 || stderr.String() != "gcscat: interrupted\n" || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, %d bytes out", args, exitCode(err), stderr.String(), stdout.Len())
		}
	}
}

// cancelAfterFirstWrite is a stdout that Ctrl-Cs the run once the first
// bytes have reached it.
type cancelAfterFirstWrite struct {
	bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelAfterFirstWrite) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	w.cancel()
	return n, err
}

// Ctrl-C in the middle of a cat: one "interrupted" line, exit 1, never
// "wrote N of M bytes"; what reached stdout is the object's first bytes.
func TestCatInterruptedMidRead(t *testing.T) {
	f := startFake(t)
	src := f.objects["big.bin"]
	for _, zonal := range []string{"off", "on"} {
		ctx, cancel := context.WithCancel(context.Background())
		stdout := &cancelAfterFirstWrite{cancel: cancel}
		var stderr bytes.Buffer
		err := run(ctx, []string{"cat", "--zonal", zonal, "--max-prefetch", "1MiB", "gs://bkt/big.bin"}, stdout, &stderr)
		cancel()
		if exitCode(err) != 1 || stderr.String() != "gcscat: interrupted\n" {
			t.Errorf("zonal %s: exit %d, stderr %q", zonal, exitCode(err), stderr.String())
		}
		got := stdout.Bytes()
		if len(got) == 0 || len(got) >= len(src) {
			t.Errorf("zonal %s: %d of %d bytes written before the interrupt took effect", zonal, len(got), len(src))
		}
		testkit.SameBytes(t, "output", got, src[:len(got)])
	}
}
