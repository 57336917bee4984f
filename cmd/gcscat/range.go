package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

type rangeKind int

const (
	rangeAll    rangeKind = iota
	rangeFrom             // START- or START-END
	rangeHead             // the first n bytes
	rangeSuffix           // the last n bytes
)

// byteRange is what part of an object cat writes.
type byteRange struct {
	kind   rangeKind
	start  int64
	end    int64 // inclusive; with hasEnd
	hasEnd bool
	n      int64
}

// parseRange parses -r's START-END, START- and -N.
func parseRange(s string) (byteRange, error) {
	first, last, ok := strings.Cut(s, "-")
	if !ok {
		return byteRange{}, errors.New("want START-END, START- or -N")
	}
	num := func(v string) (int64, error) {
		if v == "" || strings.TrimLeft(v, "0123456789") != "" {
			return 0, fmt.Errorf("%q is not a byte offset", v)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s is too large for a byte offset (the largest is %d)", v, int64(math.MaxInt64))
		}
		return n, nil
	}
	if first == "" {
		n, err := num(last)
		if err != nil {
			return byteRange{}, err
		}
		if n == 0 {
			return byteRange{}, errors.New("a suffix range needs N > 0")
		}
		return byteRange{kind: rangeSuffix, n: n}, nil
	}
	start, err := num(first)
	if err != nil {
		return byteRange{}, err
	}
	r := byteRange{kind: rangeFrom, start: start}
	if last == "" {
		return r, nil
	}
	if r.end, err = num(last); err != nil {
		return byteRange{}, err
	}
	if r.end < start {
		return byteRange{}, fmt.Errorf("END %d is before START %d", r.end, start)
	}
	r.hasEnd = true
	return r, nil
}

// resolve returns the offset and length of the range in an object of
// size bytes: START past the end is an error, everything else is clipped.
func (r byteRange) resolve(size int64) (off, n int64, err error) {
	switch r.kind {
	case rangeHead:
		return 0, min(r.n, size), nil
	case rangeSuffix:
		n = min(r.n, size)
		return size - n, n, nil
	case rangeFrom:
		if r.start >= size && (r.start > 0 || size > 0) {
			return 0, 0, fmt.Errorf("range start %d is past the end of the object (%d bytes)", r.start, size)
		}
		end := size - 1
		if r.hasEnd {
			end = min(r.end, end)
		}
		return r.start, max(0, end-r.start+1), nil
	}
	return 0, size, nil
}
