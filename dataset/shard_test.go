package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// handPlan is a plan of units with the given rows, one file each (no
// footers: units are not trimmed).
func handPlan(rows []int64) *Plan {
	p := &Plan{}
	for i, n := range rows {
		name := fmt.Sprintf("f%05d", i)
		p.Files = append(p.Files, PlanFile{Name: name, Rows: n})
		p.Units = append(p.Units, Unit{File: name, NumRowGroups: 1, Rows: n})
		p.TotalRows += n
	}
	return p
}

// shardRows expands a shard into plan-global row ids (the plan's unit
// base + offset), in the shard's order.
func shardRows(t testing.TB, p *Plan, s *Shard) []int64 {
	t.Helper()
	base := map[string]int64{}
	var at int64
	for _, u := range p.Units {
		base[u.File] = at
		at += u.Rows
	}
	var ids []int64
	for _, u := range s.Units {
		if u.Rows <= 0 || u.RowOffset < 0 {
			t.Fatalf("empty or negative unit %+v", u)
		}
		for r := range u.Rows {
			ids = append(ids, base[u.File]+u.RowOffset+r)
		}
	}
	if int64(len(ids)) != s.Rows {
		t.Fatalf("shard units hold %d rows, Rows says %d", len(ids), s.Rows)
	}
	return ids
}

func batchCount(rows, size int64, dropLast bool) int64 {
	n := rows / size
	if rows%size != 0 && !dropLast {
		n++
	}
	return n
}

// checkShards checks the World shards of one epoch: disjoint, covering
// every row (Equal: all but Dropped < World), equal rows and batch counts
// in Equal mode, rows within one of each other otherwise.
func checkShards(t testing.TB, p *Plan, o ShardOptions, batch int64) [][]int64 {
	t.Helper()
	seen := make([]bool, p.TotalRows)
	var all [][]int64
	var counts []int64
	for r := range o.World {
		o.Rank = r
		s, err := p.Shard(o)
		if err != nil {
			t.Fatal(err)
		}
		ids := shardRows(t, p, s)
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("%+v: row %d in two shards", o, id)
			}
			seen[id] = true
		}
		counts = append(counts, s.Rows)
		if o.Equal && (s.Dropped < 0 || s.Dropped >= int64(o.World) || s.Rows*int64(o.World)+s.Dropped != p.TotalRows) {
			t.Fatalf("%+v: %d rows and %d dropped of %d", o, s.Rows, s.Dropped, p.TotalRows)
		}
		if s.Rows > s.MaxRows || s.MaxRows-s.Rows > 1 {
			t.Fatalf("%+v: %d rows, MaxRows %d", o, s.Rows, s.MaxRows)
		}
		all = append(all, ids)
	}
	covered := int64(0)
	for _, b := range seen {
		if b {
			covered++
		}
	}
	lo, hi := slices.Min(counts), slices.Max(counts)
	if o.Equal {
		if lo != hi || p.TotalRows-covered >= int64(o.World) {
			t.Fatalf("%+v: equal shards of %v rows, %d of %d covered", o, counts, covered, p.TotalRows)
		}
		for _, dl := range []bool{false, true} {
			if batchCount(lo, batch, dl) != batchCount(hi, batch, dl) {
				t.Fatalf("batch counts differ")
			}
		}
	} else if covered != p.TotalRows || hi-lo > 1 {
		t.Fatalf("%+v: shards of %v rows cover %d of %d", o, counts, covered, p.TotalRows)
	}
	return all
}

func TestShardTable(t *testing.T) {
	for _, c := range []struct {
		rows   []int64
		world  int
		equal  bool
		counts []int64
	}{
		{[]int64{10}, 8, true, []int64{1, 1, 1, 1, 1, 1, 1, 1}},
		{[]int64{10}, 8, false, []int64{1, 1, 1, 2, 1, 1, 1, 2}},
		{[]int64{3, 0, 4}, 2, true, []int64{3, 3}},
		{[]int64{3, 0, 4}, 2, false, []int64{3, 4}},
		{[]int64{5}, 1, false, []int64{5}},
		{[]int64{2}, 3, true, []int64{0, 0, 0}},
		{nil, 4, false, []int64{0, 0, 0, 0}},
	} {
		p := handPlan(c.rows)
		var got []int64
		for r := range c.world {
			s, err := p.Shard(ShardOptions{Rank: r, World: c.world, Equal: c.equal})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, s.Rows)
		}
		if !slices.Equal(got, c.counts) {
			t.Errorf("rows %v world %d equal %v: counts %v, want %v", c.rows, c.world, c.equal, got, c.counts)
		}
		checkShards(t, p, ShardOptions{World: c.world, Equal: c.equal}, 2)
	}
	// Row 3 of the 10-row unit goes to rank 3 in Equal mode: one unit split
	// eight ways by row range.
	s, _ := handPlan([]int64{10}).Shard(ShardOptions{Rank: 3, World: 8, Equal: true})
	if len(s.Units) != 1 || s.Units[0].RowOffset != 3 || s.Units[0].Rows != 1 {
		t.Fatalf("rank 3 of 8: %+v", s.Units)
	}
}

func TestShardRejectsBadRank(t *testing.T) {
	p := handPlan([]int64{10})
	for _, o := range []ShardOptions{{Rank: -1, World: 2}, {Rank: 0, World: 0}, {Rank: 2, World: 2}, {Rank: 0, World: -3}} {
		if _, err := p.Shard(o); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Shard(%+v) = %v, want fs.ErrInvalid", o, err)
		}
	}
}

// Random plans (units of 0..50 rows, some empty), world sizes 1..17, both
// modes, shuffled and not, over several epochs.
func TestShardProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 60 {
		rows := make([]int64, rng.IntN(30))
		for i := range rows {
			rows[i] = int64(rng.IntN(51))
		}
		p := handPlan(rows)
		for world := 1; world <= 17; world++ {
			for _, equal := range []bool{false, true} {
				o := ShardOptions{World: world, Equal: equal, ShuffleUnits: trial%2 == 0, Seed: uint64(trial), Epoch: world % 3}
				checkShards(t, p, o, int64(1+rng.IntN(9)))
			}
		}
	}
}

// FuzzShard checks the properties on fuzzed plans and world sizes.
func FuzzShard(f *testing.F) {
	f.Add([]byte{10}, uint8(8), true, uint64(0), uint8(3))
	f.Add([]byte{1, 0, 200, 7, 7, 7}, uint8(17), false, uint64(9), uint8(1))
	f.Add([]byte{}, uint8(1), true, uint64(1), uint8(64))
	f.Fuzz(func(t *testing.T, units []byte, world uint8, equal bool, seed uint64, batch uint8) {
		rows := make([]int64, len(units))
		for i, b := range units {
			rows[i] = int64(b)
		}
		p := handPlan(rows)
		w := int(world%17) + 1
		for epoch := range 2 {
			checkShards(t, p, ShardOptions{World: w, Equal: equal, ShuffleUnits: true, Seed: seed, Epoch: epoch}, int64(batch)+1)
		}
	})
}

// Row counts near the int64 limit: the arithmetic does not overflow.
func TestShardRangeOverflow(t *testing.T) {
	for _, total := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 / 3} {
		for world := 1; world <= 17; world++ {
			for _, equal := range []bool{false, true} {
				var sum, next int64
				for r := range world {
					first, rows, most := shardRange(total, r, world, equal)
					if first != next || rows < 0 || rows > most {
						t.Fatalf("total %d world %d rank %d: first %d rows %d most %d, want first %d", total, world, r, first, rows, most, next)
					}
					next = first + rows
					sum += rows
				}
				if !equal && sum != total || equal && total-sum >= int64(world) {
					t.Fatalf("total %d world %d equal %v: shards hold %d", total, world, equal, sum)
				}
			}
		}
	}
}

// The unit order: the same for the same (seed, epoch), another for another
// epoch or seed, a permutation always.
func TestEpochUnitOrder(t *testing.T) {
	rows := make([]int64, 50)
	for i := range rows {
		rows[i] = 1
	}
	p := handPlan(rows)
	order := func(seed uint64, epoch int) []int64 {
		s, err := p.Shard(ShardOptions{World: 1, ShuffleUnits: true, Seed: seed, Epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		return shardRows(t, p, s)
	}
	a := order(7, 0)
	if !slices.Equal(a, order(7, 0)) {
		t.Fatal("same seed and epoch, different order")
	}
	if slices.Equal(a, order(7, 1)) || slices.Equal(a, order(8, 0)) {
		t.Fatal("another epoch or seed, same order")
	}
	sorted := slices.Clone(a)
	slices.Sort(sorted)
	if slices.Equal(a, sorted) || !slices.Equal(sorted, idRange(0, 50)) {
		t.Fatalf("order %v is not a shuffled permutation", a)
	}
}
