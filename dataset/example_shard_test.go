package dataset_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/zonalread/zonalread/dataset"
)

// Two ranks of a multi-host job read disjoint, equal shards of a plan whose
// unit order is shuffled by (seed, epoch); a rank stopped after one batch
// resumes from its JSON Position with exactly the batches it had left. A
// real job takes Rank and World from RANK and WORLD_SIZE (see the README).
func ExampleDataset_ShardBatches() {
	ctx := context.Background()
	fsys, closeFS := intFiles(ctx, 3) // 30 rows, row groups of 5
	defer closeFS()
	ds, err := dataset.ReadParquet(fsys, "t/*.parquet", &dataset.ReadOptions{TargetBlockBytes: 1})
	if err != nil {
		panic(err)
	}
	batches := &dataset.BatchOptions{BatchSize: 4, DropLast: true}
	for rank := range 2 {
		sh := dataset.ShardOptions{Rank: rank, World: 2, Equal: true, ShuffleUnits: true, Seed: 42, Epoch: 0}
		it, err := ds.ShardBatches(ctx, sh, nil, batches)
		if err != nil {
			panic(err)
		}
		for it.Next() {
			fmt.Printf("rank %d: %v\n", rank, it.Batch().Record.Column(0))
		}
		if err := it.Err(); err != nil {
			panic(err)
		}
		it.Close()
	}

	// Rank 1 stops after one batch and saves its position with a checkpoint.
	sh := dataset.ShardOptions{Rank: 1, World: 2, Equal: true, ShuffleUnits: true, Seed: 42, Epoch: 0}
	it, _ := ds.ShardBatches(ctx, sh, nil, batches)
	it.Next()
	var saved bytes.Buffer
	json.NewEncoder(&saved).Encode(it.Position())
	it.Close()

	// The restarted rank resumes from it.
	var pos dataset.Position
	json.NewDecoder(&saved).Decode(&pos)
	it, err = ds.ShardBatches(ctx, sh, &pos, batches)
	if err != nil {
		panic(err)
	}
	defer it.Close()
	for it.Next() {
		fmt.Printf("rank 1 resumed at batch %d: %v\n", it.Position().Batches-1, it.Batch().Record.Column(0))
	}
	// Output:
	// rank 0: [0 1 2 3]
	// rank 0: [4 15 16 17]
	// rank 0: [18 19 20 21]
	// rank 1: [10 11 12 13]
	// rank 1: [14 5 6 7]
	// rank 1: [8 9 25 26]
	// rank 1 resumed at batch 1: [14 5 6 7]
	// rank 1 resumed at batch 2: [8 9 25 26]
}
