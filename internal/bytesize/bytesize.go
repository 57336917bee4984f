// Package bytesize parses and prints byte counts for the commands under
// cmd/: one parser, so that every flag that takes a size accepts the same
// spellings.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse parses a byte count: 1048576, 1MiB, 1M, 1mb, 512k. The K, M, G, T
// suffixes are powers of 1024, with or without "B" or "iB", in any case.
// Negative counts, fractions and counts over 2^62 bytes are errors.
func Parse(v string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(v))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			shift = 10
		case 'm':
			shift = 20
		case 'g':
			shift = 30
		case 't':
			shift = 40
		}
		if shift > 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("bad size %q (want bytes, or a number with K, M, G or T)", v)
	}
	return n << shift, nil
}

// Format formats n for people: "64.0 MiB", or "512 B" under 1 KiB.
func Format(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit && f > -unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	panic("unreachable")
}

// Value is a flag.Value of a byte count, parsed by Parse.
type Value int64

// String is the size in the largest unit that divides it: "64MiB".
func (s *Value) String() string {
	n := int64(*s)
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses v with Parse.
func (s *Value) Set(v string) error {
	n, err := Parse(v)
	if err != nil {
		return err
	}
	*s = Value(n)
	return nil
}
