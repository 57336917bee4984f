package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A missing bucket is reported in the same words by every command,
// whatever part of the bucket the URL names and whatever the read backend.
func TestNoSuchBucketWordedAlike(t *testing.T) {
	startFake(t)
	const want = "gcscat: gs://nobucket: no such bucket\n"
	for _, args := range [][]string{
		{"ls", "gs://nobucket"},
		{"ls", "gs://nobucket/x"},
		{"ls", "-l", "-R", "gs://nobucket/dir/"},
		{"ls", "gs://nobucket/*.txt"},
		{"stat", "gs://nobucket/x"},
		{"stat", "gs://nobucket/dir/"},
		{"cat", "gs://nobucket/x"},
		{"cat", "--zonal", "off", "gs://nobucket/x"},
		{"cat", "-r", "0-10", "gs://nobucket/x"},
	} {
		r := gcscat(t, args...)
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("gcscat %v: exit %d, stdout %q, stderr %q; want exit 1, stderr %q", args, r.code, r.stdout, r.stderr, want)
		}
	}
	dir := t.TempDir()
	missing := "file://" + filepath.ToSlash(filepath.Join(dir, "nodir"))
	wantFile := "gcscat: " + missing + ": no such bucket\n"
	for _, args := range [][]string{
		{"ls", missing + "/x"},
		{"stat", missing + "/x"},
		{"cat", missing + "/x"},
	} {
		r := gcscat(t, args...)
		if r.code != 1 || r.stderr != wantFile {
			t.Errorf("gcscat %v: exit %d, stderr %q; want %q", args, r.code, r.stderr, wantFile)
		}
	}
}

// cat of a prefix says it is a directory, on gs:// and file:// alike; a
// missing object is still "no such object".
func TestCatPrefixIsADirectory(t *testing.T) {
	startFake(t)
	for _, u := range []string{"gs://bkt/dir", "gs://bkt/dir/sub"} {
		r := gcscat(t, "cat", u)
		r.check(t, 1, "gcscat: "+u+": is a directory (a prefix), not an object: list it with gcscat ls\n")
	}
	r := gcscat(t, "cat", "gs://bkt/dirx")
	r.check(t, 1, "gcscat: gs://bkt/dirx: no such object\n")

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "p", "q"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p", "q", "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file:// URL of an existing directory is a bucket: a usage error.
	r = gcscat(t, "cat", "file://"+filepath.ToSlash(filepath.Join(dir, "p")))
	r.check(t, 2, "names a bucket or directory, not an object")
}

// Numbers in -r too large for an int64 get a plain message (a usage error),
// not strconv's; the largest offset is accepted and clipped as usual.
func TestRangeNumbersOutOfRange(t *testing.T) {
	startFake(t)
	big := "99999999999999999999"
	max := strconv.FormatInt(math.MaxInt64, 10)
	for _, tc := range []struct {
		r    string
		want string
	}{
		{big + "-", `-r "` + big + `-": ` + big + " is too large for a byte offset (the largest is " + max + ")"},
		{"0-" + big, big + " is too large for a byte offset"},
		{"-" + big, big + " is too large for a byte offset"},
	} {
		r := gcscat(t, "cat", "-r", tc.r, "gs://bkt/small.txt")
		r.check(t, 2, tc.want)
		if strings.Contains(r.stderr, "strconv") || strings.Contains(r.stderr, "value out of range") {
			t.Errorf("-r %s: %s", tc.r, r.stderr)
		}
	}
	r := gcscat(t, "cat", "-r", "0-"+max, "gs://bkt/small.txt")
	r.check(t, 0, "")
	if r.stdout != "hello, gcscat\nsecond line\n" {
		t.Errorf("-r 0-MaxInt64 = %q", r.stdout)
	}
	r = gcscat(t, "cat", "-r", "-"+max, "gs://bkt/small.txt")
	r.check(t, 0, "")
	if r.stdout != "hello, gcscat\nsecond line\n" {
		t.Errorf("-r -MaxInt64 = %q", r.stdout)
	}
	r = gcscat(t, "cat", "-r", max+"-", "gs://bkt/small.txt")
	r.check(t, 1, "range start "+max+" is past the end of the object (26 bytes)")
}

// Windows under 64 KiB are usage errors (--max-prefetch 1 would read one
// request per byte); 0 keeps the default and 64 KiB is accepted.
func TestSmallWindowsAreUsageErrors(t *testing.T) {
	startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cat", "--max-prefetch", "1", "gs://bkt/small.txt"}, "gcscat cat: --max-prefetch must be at least 64.0 KiB (or 0 for the default), got 1 bytes"},
		{[]string{"cat", "--max-prefetch", "65535", "gs://bkt/small.txt"}, "--max-prefetch must be at least 64.0 KiB"},
		{[]string{"bench", "--max-prefetch", "4k", "gs://bkt/small.txt"}, "gcscat bench: --max-prefetch must be at least 64.0 KiB"},
		{[]string{"bench", "--block-size", "1", "gs://bkt/small.txt"}, "gcscat bench: --block-size must be at least 64.0 KiB (or 0 for the default), got 1 bytes"},
	} {
		r := gcscat(t, tc.args...)
		r.check(t, 2, tc.want)
		if r.stdout != "" {
			t.Errorf("%v wrote %q", tc.args, r.stdout)
		}
	}
	for _, size := range []string{"0", "64KiB"} {
		r := gcscat(t, "cat", "--max-prefetch", size, "gs://bkt/big.bin")
		r.check(t, 0, "")
		if len(r.out) != 5<<20+12345 {
			t.Errorf("--max-prefetch %s: %d bytes", size, len(r.out))
		}
	}
}

// FuzzRangeFlag parses any -r text and resolves it against objects of
// sizes up to MaxInt64: it never panics, and a range it accepts lies
// inside the object. The seed corpus runs in `make test`.
func FuzzRangeFlag(f *testing.F) {
	max := strconv.FormatInt(math.MaxInt64, 10)
	for _, s := range []string{"0-10", "5-", "-3", "0-" + max, max + "-", "-" + max, max + "-" + max, "9223372036854775806-" + max, "99999999999999999999-", "-0", "-", "a-b", "1-0"} {
		f.Add(s, int64(100))
		f.Add(s, int64(math.MaxInt64))
	}
	f.Add("0-", int64(0))
	f.Fuzz(func(t *testing.T, s string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		br, err := parseRange(s)
		if err != nil {
			return
		}
		off, n, err := br.resolve(size)
		if err != nil {
			return
		}
		if off < 0 || n < 0 || off > size-n {
			t.Fatalf("-r %q on %d bytes resolved to %d bytes at %d", s, size, n, off)
		}
	})
}
