package dataset

// This file holds sharding: which rows of a plan one rank of a multi-host
// job reads in an epoch. It is pure arithmetic over the plan's units, the
// seed and the epoch, so every rank computes its part alone.

import (
	"fmt"
	"io/fs"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// ShardOptions say which part of a plan one rank reads in one epoch.
type ShardOptions struct {
	// Rank and World: this process is rank Rank of World (0 <= Rank <
	// World), as RANK and WORLD_SIZE give them to a torchrun or JAX job.
	Rank, World int
	// Equal gives every rank exactly the same rows: TotalRows / World
	// each, the remainder (fewer than World rows, Shard.Dropped) read by
	// no rank that epoch. With the same BatchOptions every rank then
	// yields the same number of batches, as a collective needs. Without
	// Equal (evaluation) every row goes to exactly one rank and the ranks'
	// rows differ by at most one (Shard.MaxRows says how many the largest
	// rank has, so a rank knows how many padding rows or batches it must
	// add to keep step with the others).
	Equal bool
	// ShuffleUnits orders the plan's units at random each epoch, from
	// (Seed, Epoch) alone: the same order on every rank, another each
	// epoch, the same again for the same seed and epoch. Without it the
	// units keep plan order.
	ShuffleUnits bool
	// Seed seeds the unit order and the local shuffle of ShardBatches.
	Seed uint64
	// Epoch is the epoch the shard is for.
	Epoch int
}

// check validates rank and world.
func (o *ShardOptions) check() error {
	if o.World <= 0 || o.Rank < 0 || o.Rank >= o.World {
		return fmt.Errorf("dataset: shard: rank %d of world %d: want world > 0 and 0 <= rank < world: %w", o.Rank, o.World, fs.ErrInvalid)
	}
	return nil
}

// Shard is one rank's part of one epoch of a plan.
type Shard struct {
	Options ShardOptions
	// Units are what the rank reads, in order: the epoch's units cut to
	// the rank's rows (a unit split between two ranks covers only the
	// row groups holding its part).
	Units []Unit
	// FirstRow is the rank's first row in the epoch's unit order; Rows is
	// how many rows it reads.
	FirstRow, Rows int64
	// MaxRows is the most rows any rank reads this epoch (Rows in Equal
	// mode; Rows or Rows+1 otherwise).
	MaxRows int64
	// Dropped is the rows no rank reads this epoch: TotalRows mod World
	// in Equal mode, else 0.
	Dropped int64
}

// Shard returns rank o.Rank's part of epoch o.Epoch: the epoch's unit
// order (plan order, or shuffled from (Seed, Epoch)) is one sequence of
// TotalRows rows, and the rank reads one contiguous run of it; units are
// split by row range at the boundaries. Every rank computes its part
// alone; the parts of the World ranks are disjoint and, without Equal,
// cover every row. It fails with an error wrapping fs.ErrInvalid for a
// rank or world out of range.
func (p *Plan) Shard(o ShardOptions) (*Shard, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	first, rows, most := shardRange(p.TotalRows, o.Rank, o.World, o.Equal)
	s := &Shard{Options: o, FirstRow: first, Rows: rows, MaxRows: most}
	if o.Equal {
		s.Dropped = p.TotalRows - int64(o.World)*rows
	}
	for _, u := range sliceUnits(p.epochUnits(o), first, rows) {
		if md := p.footerOf(u.File); md != nil {
			u = trimUnit(u, md)
		}
		s.Units = append(s.Units, u)
	}
	return s, nil
}

// shardRange is rank's run [first, first+rows) of total rows shared by
// world ranks, and the most rows any rank gets. Equal: total/world each.
// Otherwise [floor(rank*total/world), floor((rank+1)*total/world)),
// computed in 128 bits so it cannot overflow.
func shardRange(total int64, rank, world int, equal bool) (first, rows, most int64) {
	w := int64(world)
	if equal {
		per := total / w
		return int64(rank) * per, per, per
	}
	at := func(r int) int64 {
		hi, lo := bits.Mul64(uint64(r), uint64(total))
		q, _ := bits.Div64(hi, lo, uint64(w)) // hi < w: r <= w and total < 2^63
		return int64(q)
	}
	first = at(rank)
	most = total / w
	if total%w != 0 {
		most++
	}
	return first, at(rank+1) - first, most
}

// epochUnits is the plan's units in the epoch's order.
func (p *Plan) epochUnits(o ShardOptions) []Unit {
	if !o.ShuffleUnits {
		return p.Units
	}
	perm := permutation(len(p.Units), mix(o.Seed, seedUnits), mix(uint64(o.Epoch), seedUnits))
	units := make([]Unit, len(perm))
	for i, j := range perm {
		units[i] = p.Units[j]
	}
	return units
}

// sliceUnits returns the units holding rows [first, first+n) of the
// sequence units make, the first and last cut to the range.
func sliceUnits(units []Unit, first, n int64) []Unit {
	var out []Unit
	end := first + n // <= the sequence's rows: no overflow
	var at int64     // the first row of u in the sequence
	for _, u := range units {
		if at >= end {
			break
		}
		if lo, hi := max(first, at), min(end, at+u.Rows); lo < hi {
			cut := u
			cut.RowOffset += lo - at
			cut.Rows = hi - lo
			out = append(out, cut)
		}
		at += u.Rows
	}
	return out
}

// trimUnit drops the row groups of u that hold none of its rows, so that
// reading it fetches only the needed ones.
func trimUnit(u Unit, md *metadata.FileMetaData) Unit {
	if checkUnit(u, md) != nil {
		return u // ReadUnit reports it
	}
	for u.NumRowGroups > 1 {
		n := md.RowGroup(u.FirstRowGroup).NumRows()
		if n > u.RowOffset {
			break
		}
		u.FirstRowGroup++
		u.NumRowGroups--
		u.RowOffset -= n
	}
	var before int64 // rows of the row groups before the last
	for rg := u.FirstRowGroup; rg < u.FirstRowGroup+u.NumRowGroups-1; rg++ {
		before += md.RowGroup(rg).NumRows()
	}
	for u.NumRowGroups > 1 && before >= u.RowOffset+u.Rows {
		u.NumRowGroups--
		before -= md.RowGroup(u.FirstRowGroup + u.NumRowGroups - 1).NumRows()
	}
	return u
}

// footerOf is the footer the plan holds for file name; nil when it holds
// none (a Plan built by hand).
func (p *Plan) footerOf(name string) *metadata.FileMetaData {
	i, ok := p.fileIndex(name)
	if !ok || i >= len(p.footers) {
		return nil
	}
	return p.footers[i]
}

// fileIndex is the index of file name in p.Files (sorted by name).
func (p *Plan) fileIndex(name string) (int, bool) {
	return slices.BinarySearchFunc(p.Files, name, func(f PlanFile, n string) int { return strings.Compare(f.Name, n) })
}

// Seed domains, so that the unit order and the local shuffle never share
// a stream.
const (
	seedUnits = 0x756e697473 // "units"
	seedLocal = 0x6c6f63616c // "local"
)

// mix hashes values into one seed (splitmix64 over each in turn).
func mix(vs ...uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, v := range vs {
		h ^= v
		h += 0x9e3779b97f4a7c15
		h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9
		h = (h ^ (h >> 27)) * 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

// permutation is a random permutation of [0, n) from a PCG seeded with
// (s1, s2): a Fisher-Yates shuffle written here, not rand.Shuffle, so the
// order is fixed by this code and the PCG's specification and stays the
// same across Go versions (a saved Position stays valid).
func permutation(n int, s1, s2 uint64) []int {
	rng := rand.NewPCG(s1, s2)
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j, _ := bits.Mul64(rng.Uint64(), uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}
