package main

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// op is one read: n bytes at off.
type op struct{ off, n int64 }

// pattern is a fixed list of reads of one object, the same for every
// strategy and run.
type pattern struct {
	id, desc   string
	object     string // the object's name
	data       []byte // the object's bytes
	ops        []op
	used       int64    // bytes the reads return, in total
	sum        [32]byte // sha256 of those bytes, in read order
	strategies []string // ids of the strategies that run it
	// sequential marks a front-to-back read of the whole object, whose
	// efficiency (ideal time over measured) the report gives, and which
	// runs Config.seqRuns times.
	sequential bool
}

var (
	streamStrategies = []string{"one-stream", readaheadID, "zonalread-noprefetch", "zonalread-http", "zonalread-mrd"}
	randomStrategies = []string{readaheadID, "zonalread-http", "zonalread-http-hedge", "zonalread-mrd", "zonalread-mrd-hedge"}
	sweepStrategies  = []string{"zonalread-http", "zonalread-mrd"}
	wholeStrategies  = []string{"one-stream", "readfile-http", "readfile-mrd"}
)

// buildPatterns returns the patterns over an object holding data, then the
// size sweep: the sequential read of smaller objects (1/16 and 1/4 of
// data's size: 16 and 64 MiB beside 256 MiB), each of its own random
// bytes. Sizes scale down for small objects so every pattern keeps its
// shape.
func buildPatterns(data []byte, short bool) []*pattern {
	size := int64(len(data))
	nRand4, nRand1, groups := 64, 32, 16
	if short {
		nRand4, nRand1, groups = 16, 8, 8
	}
	ps := []*pattern{
		sequential("sequential", size),
		{id: "whole", strategies: wholeStrategies,
			desc: "the whole object at once: one stream read into one buffer, or gcsfs ReadFile (parallel ranges)",
			ops:  []op{{0, size}}},
		randomPattern("random-4KiB", size, min(4<<10, size), nRand4, 1),
		randomPattern("random-1MiB", size, min(1<<20, size/4), nRand1, 2),
		backForward(size, readSize(size)),
		strided(size, groups),
	}
	for _, p := range ps {
		p.object, p.data = objectName, data
	}
	for i, n := range []int64{size / 16, size / 4} {
		p := sequential("sequential-"+strings.ReplaceAll(human(n), " ", ""), n)
		p.strategies = sweepStrategies
		p.object = fmt.Sprintf("sweep-%d.bin", n)
		p.data = make([]byte, n)
		rand.NewChaCha8([32]byte{'s', 'w', 'e', 'e', 'p', byte(i)}).Read(p.data)
		ps = append(ps, p)
	}
	for _, p := range ps {
		h := sha256.New()
		for _, o := range p.ops {
			h.Write(p.data[o.off : o.off+o.n])
			p.used += o.n
		}
		h.Sum(p.sum[:0])
	}
	return ps
}

// readSize is the application's read size on an object of size bytes.
func readSize(size int64) int64 { return min(1<<20, max(4<<10, size/16)) }

// sequential is the front-to-back read of an object of size bytes.
func sequential(id string, size int64) *pattern {
	rs := readSize(size)
	return &pattern{id: id, strategies: streamStrategies, sequential: true,
		desc: fmt.Sprintf("Read calls of %s from the start to the end of a %s object (io.ReadFull per call)", human(rs), human(size)),
		ops:  sequentialOps(0, size, rs)}
}

func sequentialOps(from, to, rs int64) []op {
	var ops []op
	for off := from; off < to; off += rs {
		ops = append(ops, op{off, min(rs, to-off)})
	}
	return ops
}

func randomPattern(id string, size, n int64, count int, seed uint64) *pattern {
	rng := rand.New(rand.NewPCG(seed, 0x5a17))
	p := &pattern{id: id, strategies: randomStrategies,
		desc: fmt.Sprintf("%d ReadAt-style reads of %s at random offsets (Seek + Read)", count, human(n))}
	for range count {
		p.ops = append(p.ops, op{rng.Int64N(size - n + 1), n})
	}
	return p
}

// backForward walks backward from the middle in read-size steps (each
// read ends where the previous one started: no prefetcher sees a run),
// then reads forward from the lowest point to the end.
func backForward(size, rs int64) *pattern {
	mid := size / 2 / rs * rs
	steps := min(16, mid/rs)
	p := &pattern{id: "back-forward", strategies: streamStrategies,
		desc: fmt.Sprintf("%d reads of %s walking backward from the middle, then %s reads forward from there to the end", steps, human(rs), human(rs))}
	for i := int64(1); i <= steps; i++ {
		p.ops = append(p.ops, op{mid - i*rs, rs})
	}
	p.ops = append(p.ops, sequentialOps(mid-steps*rs, size, rs)...)
	return p
}

// Parquet-like layout: row groups of 8 equal column chunks, then a footer.
const (
	columns    = 8
	footerSize = 64 << 10
)

// selected are the column chunks a query reads from each row group.
var selected = []int64{1, 4, 6}

// strided reads the footer (one read of the tail, as Parquet readers do),
// then the selected column chunks of every row group in file order, each
// with one read of the whole chunk.
func strided(size int64, groups int) *pattern {
	footer := min(footerSize, size/64)
	chunk := (size - footer) / int64(groups*columns)
	p := &pattern{id: "strided", strategies: append(slices.Clone(streamStrategies), "vectored-http", "vectored-mrd"),
		desc: fmt.Sprintf("Parquet-like: the %s footer, then columns %v of %d in each of %d row groups (chunks of %s, one read each)",
			human(footer), selected, columns, groups, human(chunk))}
	p.ops = append(p.ops, op{size - footer, footer})
	for g := range int64(groups) {
		for _, c := range selected {
			p.ops = append(p.ops, op{(g*columns + c) * chunk, chunk})
		}
	}
	return p
}

func maxUsed(ps []*pattern) int64 {
	var m int64
	for _, p := range ps {
		m = max(m, p.used)
	}
	return m
}

// human formats a byte count with a binary unit.
func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
