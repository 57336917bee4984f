package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/internal/bytesize"
)

func TestLs(t *testing.T) {
	startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gs://bkt"}, "gs://bkt/big.bin\ngs://bkt/dir/\ngs://bkt/empty\ngs://bkt/small.txt\n"},
		{[]string{"gs://bkt/"}, "gs://bkt/big.bin\ngs://bkt/dir/\ngs://bkt/empty\ngs://bkt/small.txt\n"},
		{[]string{"gs://bkt/dir"}, "gs://bkt/dir/a.txt\ngs://bkt/dir/sub/\n"},
		{[]string{"gs://bkt/dir/"}, "gs://bkt/dir/a.txt\ngs://bkt/dir/sub/\n"},
		{[]string{"gs://bkt/dir/sub"}, "gs://bkt/dir/sub/b.txt\n"},
		{[]string{"-R", "gs://bkt"}, "gs://bkt/big.bin\ngs://bkt/dir/a.txt\ngs://bkt/dir/sub/b.txt\ngs://bkt/empty\ngs://bkt/small.txt\n"},
		{[]string{"-R", "gs://bkt/dir"}, "gs://bkt/dir/a.txt\ngs://bkt/dir/sub/b.txt\n"},
		{[]string{"gs://bkt/small.txt"}, "gs://bkt/small.txt\n"},
		{[]string{"gs://bkt/dir/*.txt"}, "gs://bkt/dir/a.txt\n"},
		{[]string{"gs://bkt/*/*"}, "gs://bkt/dir/a.txt\ngs://bkt/dir/sub/\n"},
		{[]string{"-R", "gs://bkt/d*"}, "gs://bkt/dir/a.txt\ngs://bkt/dir/sub/b.txt\n"},
		{[]string{"gs://bkt/dir/sub", "gs://bkt/empty"}, "gs://bkt/dir/sub/b.txt\ngs://bkt/empty\n"},
		// The read flags do not apply, but a zonal URL is accepted.
		{[]string{"gs://bkt/dir/sub?zonal=true"}, "gs://bkt/dir/sub/b.txt\n"},
	} {
		r := gcscat(t, append([]string{"ls"}, tc.args...)...)
		r.check(t, 0, "")
		if r.stdout != tc.want {
			t.Errorf("ls %v:\n%s\nwant:\n%s", tc.args, r.stdout, tc.want)
		}
	}
}

func TestLsLong(t *testing.T) {
	f := startFake(t)
	r := gcscat(t, "ls", "-l", "gs://bkt/dir")
	r.check(t, 0, "")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("ls -l:\n%s", r.stdout)
	}
	re := regexp.MustCompile(`^ *2  ` + fmt.Sprint(f.gens["dir/a.txt"]) + `  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  gs://bkt/dir/a\.txt$`)
	if !re.MatchString(lines[0]) {
		t.Errorf("line %q does not match %s", lines[0], re)
	}
	if !strings.HasSuffix(lines[1], "  gs://bkt/dir/sub/") || strings.TrimSpace(lines[1]) != "gs://bkt/dir/sub/" {
		t.Errorf("prefix line %q", lines[1])
	}
	if lines[2] != "TOTAL: 1 objects, 2 bytes (2 B)" {
		t.Errorf("total line %q", lines[2])
	}

	r = gcscat(t, "ls", "-l", "-R", "gs://bkt")
	r.check(t, 0, "")
	lines = strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	var total int
	for _, data := range f.objects {
		total += len(data)
	}
	if len(lines) != 6 || lines[5] != fmt.Sprintf("TOTAL: 5 objects, %d bytes (%s)", total, bytesize.Format(int64(total))) {
		t.Fatalf("ls -l -R:\n%s", r.stdout)
	}
	// Sizes are right-aligned: every URL starts in the same column.
	col := strings.Index(lines[0], "gs://")
	for _, l := range lines[:5] {
		if strings.Index(l, "gs://") != col {
			t.Errorf("misaligned:\n%s", r.stdout)
		}
	}
	if !strings.HasPrefix(strings.TrimSpace(lines[0]), fmt.Sprint(len(f.objects["big.bin"]))+"  "+fmt.Sprint(f.gens["big.bin"])) {
		t.Errorf("first line %q", lines[0])
	}
}

func TestLsErrors(t *testing.T) {
	startFake(t)
	for _, tc := range []errCase{
		{[]string{"gs://bkt/nope"}, 1, "gcscat: gs://bkt/nope: no such object or prefix\n"},
		{[]string{"gs://bkt/nope/*"}, 1, "gcscat: gs://bkt/nope/*: no objects match\n"},
		{[]string{"gs://bkt/[x"}, 1, "syntax error in pattern"},
		{[]string{}, 2, "gcscat ls: no URL given"},
		{[]string{"-x", "gs://bkt"}, 2, "flag provided but not defined: -x"},
		{[]string{"gs://bkt/../x"}, 2, "bad URL"},
		{[]string{"http://bkt/x"}, 2, `unsupported scheme "http"`},
	} {
		r := gcscat(t, append([]string{"ls"}, tc.args...)...)
		r.check(t, tc.code, tc.want)
		if r.stdout != "" {
			t.Errorf("ls %v wrote %q", tc.args, r.stdout)
		}
	}
}

func TestStat(t *testing.T) {
	f := startFake(t)
	r := gcscat(t, "stat", "gs://bkt/big.bin", "gs://bkt/dir", "gs://bkt/empty")
	r.check(t, 0, "")
	re := regexp.MustCompile(`^gs://bkt/big\.bin:
    Name:       big\.bin
    Size:       5255225 \(5\.0 MiB\)
    Generation: ` + fmt.Sprint(f.gens["big.bin"]) + `
    Updated:    \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ
gs://bkt/dir/:
    Type: directory \(prefix\)
gs://bkt/empty:
    Name:       empty
    Size:       0 \(0 B\)
`)
	if !re.MatchString(r.stdout) {
		t.Errorf("stat output:\n%s\ndoes not match:\n%s", r.stdout, re)
	}

	r = gcscat(t, "stat", "gs://bkt/small.txt", "gs://bkt/nope")
	r.check(t, 1, "gcscat: gs://bkt/nope: no such object\n")
	if !strings.HasPrefix(r.stdout, "gs://bkt/small.txt:\n") {
		t.Errorf("stdout %q", r.stdout)
	}
	r = gcscat(t, "stat")
	r.check(t, 2, "gcscat stat: no URL given")
	r = gcscat(t, "stat", "gs://BKT/x")
	r.check(t, 2, "not a valid bucket name")
}
