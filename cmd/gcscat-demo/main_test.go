package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Bad command lines are usage errors (exit status 2) that say what is
// wrong; -h is not an error. The tour itself is tested in cmd/gcscat,
// in-process, and run on gcscat's binary by 'make demo'.
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
