package dataset

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A cut never hands out a slice that keeps its block alive: once every row
// of a block was cut, the block's buffers are freed while the batches cut
// from it live on, and what the carry is counted for is what it keeps
// alive. Each block has its own checked allocator, so "freed" is exact.
func TestRowCarryCutFreesItsBlocks(t *testing.T) {
	mems := make([]*memory.CheckedAllocator, 4)
	blocks := make([]arrow.RecordBatch, 4)
	sizes := make([]int64, 4)
	var first int64
	for i, n := range []int64{8000, 3000, 1500, 1500} {
		mems[i] = memory.NewCheckedAllocator(memory.NewGoAllocator())
		blocks[i] = idBlockIn(mems[i], first, n)
		sizes[i] = recordSize(blocks[i])
		first += n
	}
	var heads []arrow.RecordBatch
	defer func() {
		for _, h := range heads {
			h.Release()
		}
		for i, m := range mems {
			if got := m.CurrentAlloc(); got != 0 {
				t.Errorf("block %d: %d bytes never freed", i, got)
			}
		}
	}()
	var c rowCarry
	defer c.release()
	cut := func(n int64) arrow.RecordBatch {
		t.Helper()
		h, size, err := c.cut(n)
		if err != nil {
			t.Fatal(err)
		}
		if h.NumRows() != n || size != recordSize(h) {
			t.Fatalf("cut(%d): %d rows counted %d, its buffers hold %d", n, h.NumRows(), size, recordSize(h))
		}
		heads = append(heads, h)
		return h
	}
	wantHeld := func(what string, bytes int64) {
		t.Helper()
		if c.bytes != bytes {
			t.Fatalf("%s: carry counted for %d bytes, keeps %d alive", what, c.bytes, bytes)
		}
	}

	c.add(blocks[0], sizes[0])
	c.add(blocks[1], sizes[1])
	for range 7 {
		cut(1000)
		wantHeld("block 0 partly cut", sizes[0]+sizes[1]) // the rest pins all of block 0
	}
	cut(1000) // the last rows of block 0: copied too, so block 0 goes
	wantHeld("block 0 cut through", sizes[1])
	if got := mems[0].CurrentAlloc(); got != 0 {
		t.Fatalf("block 0 cut through: %d bytes of it still allocated while its batches live", got)
	}
	if h := cut(3000); h != blocks[1] {
		t.Fatal("a whole block the carry owns was copied, not handed over")
	}
	wantHeld("empty", 0)

	c.add(blocks[2], sizes[2])
	c.add(blocks[3], sizes[3])
	cut(2000) // across the two blocks: block 2 goes, block 3's rest stays
	wantHeld("across blocks", sizes[3])
	if got := mems[2].CurrentAlloc(); got != 0 {
		t.Fatalf("block 2 cut through: %d bytes of it still allocated", got)
	}
	cut(1000)
	wantHeld("all cut", 0)
	if got := mems[3].CurrentAlloc(); got != 0 {
		t.Fatalf("block 3 cut through: %d bytes of it still allocated", got)
	}

	// The batches hold every row once, in order, with its values.
	var id int64
	for _, h := range heads {
		ids := h.Column(0).(*array.Int64)
		xs := h.Column(1).(*array.Float64)
		names := h.Column(2).(*array.String)
		for i := range ids.Len() {
			want := rowFor(id)
			if got := (row{ids.Value(i), xs.Value(i), names.Value(i)}); got != want {
				t.Fatalf("row %d: got %+v, want %+v", id, got, want)
			}
			id++
		}
	}
	if id != first {
		t.Fatalf("%d rows cut, want %d", id, first)
	}
}
