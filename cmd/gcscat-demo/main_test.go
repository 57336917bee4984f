package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// Bad command lines are usage errors (exit status 2) that say what is
// wrong; -h is not an error.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"extra"}, 2, `gcscat-demo takes no arguments, got ["extra"]`},
		{[]string{"-size", "0"}, 2, "--size must be between 1 byte and 1.0 GiB"},
		{[]string{"-size", "2GiB"}, 2, "--size must be between 1 byte and 1.0 GiB"},
		{[]string{"-size", "lots"}, 2, `bad size "lots"`},
		{[]string{"-h"}, 0, "Usage: gcscat-demo [flags]"},
		{[]string{"-gcscat", "/nonexistent/gcscat"}, 1, "/nonexistent/gcscat"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
			t.Errorf("gcscat-demo %q: exit status %d, stderr %q, stdout %q; want %d and %q", tc.args, code, stderr.String(), stdout.String(), tc.code, tc.want)
		}
	}
}

// What make demo does: the tour of a freshly built gcscat binary, run as
// child processes that find the fakes through the emulator variables. The
// tour's every line is checked in-process by cmd/gcscat's TestDemo; this
// checks the binary's exit statuses and bytes reach the tour.
func TestTourOfBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gcscat")
	}
	bin := filepath.Join(t.TempDir(), "gcscat")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/zonalread/zonalread/cmd/gcscat")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "before:1")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-gcscat", bin, "-size", "1MiB"}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit status %d, stderr:\n%s\nstdout:\n%s", code, stderr.String(), out)
	}
	for _, want := range []string{
		"$ gcscat cat gs://demo/hello.txt\nHello from gcscat!\n",
		": identical)",
		"gcsfs backend: gRPC multi-range downloaders",
		"gcscat: gs://demo/no-such-object.txt: no such object\n[exit status 1]\n",
		"[exit status 2]\n\nDone in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tour output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "MISMATCH") || strings.Contains(out, "DIFFERENT") {
		t.Errorf("tour output:\n%s", out)
	}
	if got := os.Getenv("STORAGE_EMULATOR_HOST"); got != "before:1" {
		t.Errorf("STORAGE_EMULATOR_HOST = %q after the tour", got)
	}
}
