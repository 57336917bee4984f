package dataset

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// idBlock is a block of rows [first, first+n) of testSchema (id, x, name).
func idBlock(first, n int64) arrow.RecordBatch { return idBlockIn(memory.DefaultAllocator, first, n) }

// idBlockIn is idBlock with its buffers allocated from mem.
func idBlockIn(mem memory.Allocator, first, n int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, testSchema)
	defer b.Release()
	for id := first; id < first+n; id++ {
		r := rowFor(id)
		b.Field(0).(*array.Int64Builder).Append(r.id)
		b.Field(1).(*array.Float64Builder).Append(r.x)
		b.Field(2).(*array.StringBuilder).Append(r.name)
	}
	return b.NewRecordBatch()
}

// drawAll feeds blocks of the given sizes into a shuffle buffer and draws
// batches of batch rows whenever it holds at least buffer rows, then
// drains it; it returns the ids in the order drawn, checking every row's
// other columns.
func drawAll(t *testing.T, seed uint64, blocks []int64, buffer, batch int64) []int64 {
	t.Helper()
	ctx := context.Background()
	s := newShuffleBuffer(seed)
	defer s.release()
	var ids []int64
	drawn := func(n int64) {
		rec, _, err := s.draw(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Release()
		for _, r := range recordRows(t, rec) {
			if r != rowFor(r.id) {
				t.Fatalf("row %+v: columns of different rows mixed", r)
			}
			ids = append(ids, r.id)
		}
	}
	var next int64
	for _, n := range blocks {
		rec := idBlock(next, n)
		s.add(rec, recordSize(rec))
		next += n
		for s.rows() >= buffer+batch {
			drawn(batch)
		}
	}
	for s.rows() > 0 {
		drawn(min(batch, s.rows()))
	}
	if s.heldBytes() != 0 {
		t.Fatalf("drained buffer still holds %d bytes", s.heldBytes())
	}
	return ids
}

// Every row comes out exactly once, with its own columns; the order depends
// on the seed only.
func TestShuffleBufferDrawsEveryRowOnce(t *testing.T) {
	blocks := []int64{1, 700, 3, 1000, 250, 999, 64, 1}
	var total int64
	for _, n := range blocks {
		total += n
	}
	a := drawAll(t, 1, blocks, 500, 100)
	b := drawAll(t, 1, blocks, 500, 100)
	c := drawAll(t, 2, blocks, 500, 100)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed drew a different order")
	}
	if slices.Equal(a, c) {
		t.Fatal("two seeds drew the same order")
	}
	sorted := slices.Sorted(slices.Values(a))
	if !slices.Equal(sorted, idRange(0, total)) {
		t.Fatalf("drew %d rows, want every one of %d exactly once", len(a), total)
	}
	if slices.IsSorted(a) {
		t.Fatal("rows came out in order")
	}
}

// Rows are drawn from the whole buffer, not from its front: over many
// seeds, the first row drawn after loading 4 blocks of 250 rows comes from
// each block about a quarter of the time.
func TestShuffleBufferDrawsFromWholeBuffer(t *testing.T) {
	var fromBlock [4]int
	const seeds = 400
	ctx := context.Background()
	for seed := range uint64(seeds) {
		s := newShuffleBuffer(seed)
		for i := range int64(4) {
			rec := idBlock(i*250, 250)
			s.add(rec, recordSize(rec))
		}
		rec, _, err := s.draw(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		fromBlock[recordRows(t, rec)[0].id/250]++
		rec.Release()
		s.release()
	}
	for i, n := range fromBlock {
		if n < seeds/4/2 || n > seeds/4*2 {
			t.Fatalf("first draws by block %v: block %d far from %d", fromBlock, i, seeds/4)
		}
	}
}

// BenchmarkShuffleDraw draws batches of 1024 rows from buffers of 16k and
// 160k rows, topped up with one 1024-row block per batch: the time per
// batch stays flat as the buffer grows 10x.
func BenchmarkShuffleDraw(b *testing.B) {
	for _, buffer := range []int64{16 << 10, 160 << 10} {
		b.Run(fmt.Sprintf("buffer=%d", buffer), func(b *testing.B) {
			ctx := context.Background()
			s := newShuffleBuffer(1)
			defer s.release()
			var next int64
			for next < buffer {
				rec := idBlock(next, 1024)
				s.add(rec, recordSize(rec))
				next += 1024
			}
			block := idBlock(0, 1024)
			defer block.Release()
			for b.Loop() {
				block.Retain()
				s.add(block, recordSize(block))
				rec, _, err := s.draw(ctx, 1024)
				if err != nil {
					b.Fatal(err)
				}
				rec.Release()
			}
		})
	}
}

// BenchmarkBatchesShuffle runs Batches with a local shuffle of 16k and of
// 160k rows over the same 320k rows and reports the time per batch: flat
// as the buffer grows 10x (each batch is drawn from a pool permuted once,
// not by permuting the whole buffer per batch).
func BenchmarkBatchesShuffle(b *testing.B) {
	files := map[string][]byte{}
	for i := range int64(4) {
		files[fmt.Sprintf("s/%d.parquet", i)] = writeParquet(b, i*80_000, 80_000, 10_000)
	}
	fsys, _ := memFS(b, files)
	ds, err := ReadParquet(fsys, "s/*.parquet", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, buffer := range []int64{16_000, 160_000} {
		b.Run(fmt.Sprintf("buffer=%d", buffer), func(b *testing.B) {
			var batches int64
			for b.Loop() {
				bi := ds.Batches(context.Background(), &BatchOptions{BatchSize: 1024, LocalShuffleBufferSize: buffer, Seed: 1})
				for bi.Next() {
					batches++
				}
				if err := bi.Err(); err != nil {
					b.Fatal(err)
				}
				bi.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(batches), "ns/batch")
		})
	}
}
