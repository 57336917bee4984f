package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// The environment of a rank child of TestMultiHostRanks.
const (
	childEnv  = "ZONALREAD_TEST_RANK_CHILD" // the output file: set only in a child
	seedEnv   = "ZONALREAD_TEST_SEED"
	epochsRun = 3
)

// rankOutput is what a rank child reports: per epoch, its row ids in order
// and its batch count.
type rankOutput struct {
	IDs     [][]int64 `json:"ids"`
	Batches []int64   `json:"batches"`
	Plan    string    `json:"plan"` // the fingerprint of the plan it computed
}

// Four ranks as four OS processes (this test binary re-executed), each with
// its own FS over one fake server, read 3 shuffled epochs: per epoch the
// ranks' rows are disjoint, cover every row but the documented drop, and
// come in the same number of batches; the order changes with the epoch and
// is the same again with the same seed.
func TestMultiHostRanks(t *testing.T) {
	if out := os.Getenv(childEnv); out != "" {
		rankChild(t, out)
		return
	}
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	srv := trainServer(t)
	a, again, other := runRanks(t, srv, 21), runRanks(t, srv, 21), runRanks(t, srv, 22)
	// 31003 rows, 4 ranks: 7750 each (3 dropped), 30 batches of 256 each
	// with DropLast (70 more dropped per rank).
	const perRank = 30 * 256
	for e := range epochsRun {
		seen := map[int64]bool{}
		for r, out := range a {
			if out.Plan == "" || out.Plan != a[0].Plan {
				t.Fatalf("rank %d planned %q, rank 0 %q", r, out.Plan, a[0].Plan)
			}
			if len(out.IDs) != epochsRun || out.Batches[e] != 30 || len(out.IDs[e]) != perRank {
				t.Fatalf("rank %d epoch %d: %d batches, %d rows", r, e, out.Batches[e], len(out.IDs[e]))
			}
			for _, id := range out.IDs[e] {
				if seen[id] || id < 0 || id >= 31003 {
					t.Fatalf("epoch %d: row %d read twice or unknown", e, id)
				}
				seen[id] = true
			}
			if !slices.Equal(out.IDs[e], again[r].IDs[e]) {
				t.Fatalf("rank %d epoch %d: another order with the same seed", r, e)
			}
			if slices.Equal(out.IDs[e], other[r].IDs[e]) {
				t.Fatalf("rank %d epoch %d: the same order with another seed", r, e)
			}
			if e > 0 && slices.Equal(out.IDs[e], out.IDs[e-1]) {
				t.Fatalf("rank %d: epochs %d and %d in the same order", r, e-1, e)
			}
		}
		if len(seen) != 4*perRank {
			t.Fatalf("epoch %d: %d rows read, want %d", e, len(seen), 4*perRank)
		}
	}
}

// runRanks runs 4 rank children of TestMultiHostRanks with seed and
// returns what they read.
func runRanks(t *testing.T, srv *testserver.Server, seed int) []rankOutput {
	dir := t.TempDir()
	var cmds []*exec.Cmd
	var stderr []*bytes.Buffer
	for r := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMultiHostRanks$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			childEnv+"="+filepath.Join(dir, fmt.Sprintf("rank%d.json", r)),
			"RANK="+strconv.Itoa(r), "WORLD_SIZE=4", seedEnv+"="+strconv.Itoa(seed),
			"STORAGE_EMULATOR_HOST="+strings.TrimPrefix(srv.HTTPURL(), "http://"), "STORAGE_EMULATOR_HOST_GRPC=")
		var e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &e, &e
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, stderr = append(cmds, cmd), append(stderr, &e)
	}
	outs := make([]rankOutput, 4)
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, stderr[r])
		}
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("rank%d.json", r)))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &outs[r]); err != nil {
			t.Fatal(err)
		}
	}
	return outs
}

// rankChild is one rank: it opens its own FS from the emulator variables,
// reads the plan's footers itself and writes its rows per epoch to out.
func rankChild(t *testing.T, out string) {
	rank, _ := strconv.Atoi(os.Getenv("RANK"))
	world, _ := strconv.Atoi(os.Getenv("WORLD_SIZE"))
	seed, _ := strconv.ParseUint(os.Getenv(seedEnv), 10, 64)
	ctx := context.Background()
	fsys, err := gcsfs.Open(ctx, "gs://train?zonal=false", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	ds := shardDS(t, fsys)
	var res rankOutput
	for epoch := range epochsRun {
		sh := ShardOptions{Rank: rank, World: world, Equal: true, ShuffleUnits: true, Seed: seed, Epoch: epoch}
		it, err := ds.ShardBatches(ctx, sh, nil, &BatchOptions{BatchSize: 256, DropLast: true, LocalShuffleBufferSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		ids, sizes, pos := drainShard(t, it, 0)
		res.Plan = pos.Plan
		res.IDs = append(res.IDs, ids)
		res.Batches = append(res.Batches, int64(len(sizes)))
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// serverFS is a new FS over bucket "train" of srv, as a new process would
// open it.
func serverFS(t testing.TB, srv *testserver.Server) *gcsfs.FS {
	t.Helper()
	ctx := context.Background()
	b, err := srv.OpenBucket(ctx, "train")
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := gcsfs.New(ctx, b, &gcsfs.Options{BucketName: "train", Zonal: gcsfs.ZonalOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fsys.Close()
		b.Close()
	})
	return fsys
}

// A rank stopped after k batches resumes from its marshalled Position (in a
// new FS and dataset, as a restarted process would): the rows equal the
// uninterrupted run's, and the server sends fewer bytes than the whole run
// minus the column chunks of the units before the resume point: those are
// never fetched.
func TestShardResumeFetchesNoSkippedUnits(t *testing.T) {
	srv := trainServer(t)
	ctx := context.Background()
	sh := ShardOptions{Rank: 1, World: 2, Equal: true, ShuffleUnits: true, Seed: 3, Epoch: 1}
	bo := &BatchOptions{BatchSize: 500}
	const k = 17 // of 31 batches

	srv.HTTP.ResetStats()
	it, err := shardDS(t, serverFS(t, srv)).ShardBatches(ctx, sh, nil, bo)
	if err != nil {
		t.Fatal(err)
	}
	full, _, _ := drainShard(t, it, 0)
	fullBytes := srv.HTTP.Stats().Bytes

	stopped := serverFS(t, srv)
	it, _ = shardDS(t, stopped).ShardBatches(ctx, sh, nil, bo)
	head, _, pos := drainShard(t, it, k)
	saved, err := json.Marshal(pos)
	if err != nil {
		t.Fatal(err)
	}

	// The stopped rank's reads ahead were cancelled; the server may still
	// be writing their responses, or not yet have read a request sent just
	// before (a resumed read of the same range then came twice, 1 run in
	// ~100 under load). Count only the resumed rank's: the stopped process
	// is gone with its connections, so wait for every connection to end.
	stopped.Close()
	srv.CloseIdleConnections()
	testkit.WaitFor(t, "the stopped rank's connections to end", func() bool {
		s := srv.HTTP.Stats()
		return s.InFlight == 0 && s.ActiveStreams == 0
	})
	srv.HTTP.ResetStats()
	var back Position
	if err := json.Unmarshal(saved, &back); err != nil {
		t.Fatal(err)
	}
	ds := shardDS(t, serverFS(t, srv))
	it, err = ds.ShardBatches(ctx, sh, &back, bo)
	if err != nil {
		t.Fatal(err)
	}
	tail, _, _ := drainShard(t, it, 0)
	resumeBytes := srv.HTTP.Stats().Bytes
	if !slices.Equal(slices.Concat(head, tail), full) {
		t.Fatalf("resumed after %d batches: %d+%d rows differ from the whole run's %d", k, len(head), len(tail), len(full))
	}
	skipped := skippedChunkBytes(t, ds, sh, k*bo.BatchSize)
	t.Logf("whole run %d bytes, resume %d bytes (footers included), column chunks of the skipped units %d bytes", fullBytes, resumeBytes, skipped)
	if skipped == 0 || resumeBytes+skipped > fullBytes {
		t.Fatalf("resume fetched %d bytes: more than the whole run's %d minus the %d of the skipped units", resumeBytes, fullBytes, skipped)
	}
}

// skippedChunkBytes is the compressed bytes of the column chunks of the
// shard's units that lie wholly in its first rows rows.
func skippedChunkBytes(t testing.TB, ds *Dataset, sh ShardOptions, rows int64) int64 {
	p, err := ds.Plan()
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Shard(sh)
	if err != nil {
		t.Fatal(err)
	}
	var n, at int64
	for _, u := range s.Units {
		if at+u.Rows > rows {
			break
		}
		at += u.Rows
		md := p.footerOf(u.File)
		for rg := u.FirstRowGroup; rg < u.FirstRowGroup+u.NumRowGroups; rg++ {
			for c := range md.RowGroup(rg).NumColumns() {
				cc, err := md.RowGroup(rg).ColumnChunk(c)
				if err != nil {
					t.Fatal(err)
				}
				n += cc.TotalCompressedSize()
			}
		}
	}
	return n
}

// trainServer is an HTTP fake server holding fourFiles in bucket "train",
// closed when t ends.
func trainServer(t *testing.T) *testserver.Server {
	t.Helper()
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{"train"}, NoGRPC: true})
	for name, data := range fourFiles(t) {
		srv.Put(t, name, data)
	}
	return srv.Server
}
