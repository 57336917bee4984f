package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"testing"
)

// fourFiles is threeFiles plus a file of 1003 rows in uneven row groups
// (300, 300, 300, 103): ids 0..31002.
func fourFiles(t testing.TB) map[string][]byte {
	m := threeFiles(t)
	m["d/part-3.parquet"] = writeParquet(t, 30000, 1003, 300)
	return m
}

// drainShard reads a shard's batches, checking every row's values against
// its id, and returns the ids in order and the position after the last
// batch taken; stop > 0 stops after that many batches.
func drainShard(t testing.TB, it *ShardIterator, stop int) (ids []int64, sizes []int64, pos Position) {
	t.Helper()
	defer it.Close()
	for it.Next() {
		rows := recordRows(t, it.Batch().Record)
		for _, r := range rows {
			if r != rowFor(r.id) {
				t.Fatalf("row %+v, want %+v", r, rowFor(r.id))
			}
			ids = append(ids, r.id)
		}
		sizes = append(sizes, int64(len(rows)))
		if stop > 0 && len(sizes) == stop {
			return ids, sizes, it.Position()
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return ids, sizes, it.Position()
}

func shardDS(t testing.TB, fsys fs.FS) *Dataset {
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1, BatchRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// Four ranks in one process: disjoint, equal batch counts, rows checked by
// value, the unit order changing with the epoch.
func TestShardBatchesRanks(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds := shardDS(t, fsys)
	bo := &BatchOptions{BatchSize: 256, DropLast: true, LocalShuffleBufferSize: 1000}
	var first [][]int64
	for epoch := range 2 {
		seen := map[int64]bool{}
		var ranks [][]int64
		for r := range 4 {
			it, err := ds.ShardBatches(context.Background(), ShardOptions{Rank: r, World: 4, Equal: true, ShuffleUnits: true, Seed: 5, Epoch: epoch}, nil, bo)
			if err != nil {
				t.Fatal(err)
			}
			ids, sizes, pos := drainShard(t, it, 0)
			// 31003 rows: 7750 a rank (3 dropped), 30 batches of 256 (DropLast).
			if len(sizes) != 30 || pos.Batches != 30 || slices.ContainsFunc(sizes, func(n int64) bool { return n != 256 }) {
				t.Fatalf("rank %d: batches %v, position %+v", r, sizes, pos)
			}
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("row %d read by two ranks", id)
				}
				seen[id] = true
			}
			ranks = append(ranks, ids)
		}
		if epoch == 0 {
			first = ranks
		} else if slices.Equal(first[0], ranks[0]) {
			t.Fatal("epochs 0 and 1 read rank 0's rows in the same order")
		}
	}
}

// A rank stopped after k batches and resumed from its marshalled Position
// yields exactly the rest of the uninterrupted run, with and without a
// local shuffle.
func TestShardResumeInProcess(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds := shardDS(t, fsys)
	ctx := context.Background()
	sh := ShardOptions{Rank: 1, World: 3, ShuffleUnits: true, Seed: 11, Epoch: 2}
	for _, bo := range []*BatchOptions{{BatchSize: 300}, {BatchSize: 300, LocalShuffleBufferSize: 1000, DropLast: true}} {
		it, err := ds.ShardBatches(ctx, sh, nil, bo)
		if err != nil {
			t.Fatal(err)
		}
		full, _, _ := drainShard(t, it, 0)
		for _, k := range []int{1, 7, 13} {
			it, _ := ds.ShardBatches(ctx, sh, nil, bo)
			head, _, pos := drainShard(t, it, k)
			b, err := json.Marshal(pos)
			if err != nil {
				t.Fatal(err)
			}
			var back Position
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			it, err = ds.ShardBatches(ctx, sh, &back, bo)
			if err != nil {
				t.Fatal(err)
			}
			tail, _, _ := drainShard(t, it, 0)
			if !slices.Equal(slices.Concat(head, tail), full) {
				t.Fatalf("%+v: stopped after %d batches and resumed: %d+%d rows differ from the %d of the whole run", bo, k, len(head), len(tail), len(full))
			}
		}
	}
}

// A Position is only accepted by the stream it was made for.
func TestShardResumeMismatch(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds := shardDS(t, fsys)
	ctx := context.Background()
	sh := ShardOptions{Rank: 0, World: 2, Seed: 1}
	bo := &BatchOptions{BatchSize: 100}
	it, err := ds.ShardBatches(ctx, sh, nil, bo)
	if err != nil {
		t.Fatal(err)
	}
	_, _, pos := drainShard(t, it, 3)
	other, _ := ReadParquet(fsys, "d/part-[01].parquet", &ReadOptions{TargetBlockBytes: 1, BatchRows: 300})
	for name, c := range map[string]struct {
		ds  *Dataset
		sh  ShardOptions
		bo  *BatchOptions
		pos Position
	}{
		"seed":   {ds, ShardOptions{Rank: 0, World: 2, Seed: 2}, bo, pos},
		"world":  {ds, ShardOptions{Rank: 0, World: 3, Seed: 1}, bo, pos},
		"rank":   {ds, ShardOptions{Rank: 1, World: 2, Seed: 1}, bo, pos},
		"epoch":  {ds, ShardOptions{Rank: 0, World: 2, Seed: 1, Epoch: 1}, bo, pos},
		"batch":  {ds, sh, &BatchOptions{BatchSize: 101}, pos},
		"plan":   {other, sh, bo, pos},
		"beyond": {ds, sh, bo, func() Position { p := pos; p.Batches = 1 << 40; return p }()},
	} {
		if _, err := c.ds.ShardBatches(ctx, c.sh, &c.pos, c.bo); !errors.Is(err, ErrPositionMismatch) {
			t.Errorf("%s: %v, want ErrPositionMismatch", name, err)
		}
	}
	if _, err := ds.Filter(nil).ShardBatches(ctx, sh, nil, bo); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("with an operator: %v", err)
	}
}

// Evaluation (no Equal, no DropLast): every row read exactly once, the
// ranks' rows within one of each other and of MaxRows.
func TestShardBatchesEvaluation(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds := shardDS(t, fsys)
	seen := map[int64]bool{}
	for r := range 3 {
		it, err := ds.ShardBatches(context.Background(), ShardOptions{Rank: r, World: 3, ShuffleUnits: true, Seed: 9}, nil, &BatchOptions{BatchSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		ids, _, _ := drainShard(t, it, 0)
		if s := it.Shard(); int64(len(ids)) != s.Rows || s.MaxRows != 10335 || s.Rows < 10334 {
			t.Fatalf("rank %d: %d rows, shard %d of at most %d", r, len(ids), s.Rows, s.MaxRows)
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("row %d twice", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 31003 {
		t.Fatalf("%d rows of 31003 read", len(seen))
	}
}

// Cancelling the context ends a shard's stream with the context's error
// (goleak in TestMain checks nothing is left running).
func TestShardBatchesCancel(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds := shardDS(t, fsys)
	ctx, cancel := context.WithCancel(context.Background())
	it, err := ds.ShardBatches(ctx, ShardOptions{World: 1}, nil, &BatchOptions{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.Next() {
		t.Fatal(it.Err())
	}
	cancel()
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}

// A budget smaller than one unit still moves (one unit at a time), and
// reads every row.
func TestShardBatchesTinyBudget(t *testing.T) {
	fsys, _ := memFS(t, fourFiles(t))
	ds, err := ReadParquet(fsys, "d/*.parquet", &ReadOptions{TargetBlockBytes: 1, MemoryBudget: 1, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	it, err := ds.ShardBatches(context.Background(), ShardOptions{World: 1}, nil, &BatchOptions{BatchSize: 999})
	if err != nil {
		t.Fatal(err)
	}
	ids, _, _ := drainShard(t, it, 0)
	if !slices.Equal(ids, idRange(0, 31003)) {
		t.Fatalf("%d rows, not 0..31002 in order", len(ids))
	}
}
