package dataset

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// This file turns a stream of blocks into batches: the formers (form for
// Batches, batchCut.form for ShardBatches), the row holders they use, and
// batchSink, through which every batch leaves a former with its bytes
// counted in the execution's budget.

// formFunc reads blocks from it and sends batches through sink until it
// ends or sink.send reports false.
type formFunc func(ctx context.Context, it BlockIterator, o *BatchOptions, sink *batchSink)

// form reads blocks and sends batches of o.BatchSize rows: in order, or
// drawn from a local shuffle buffer. The shuffle buffer holds at least
// LocalShuffleBufferSize rows before it draws, or, when those rows would
// take more than half the memory budget, as many as fit in that half.
func form(ctx context.Context, it BlockIterator, o *BatchOptions, sink *batchSink) {
	var src batchSource = &inOrder{}
	if o.LocalShuffleBufferSize > 0 {
		src = newShuffleBuffer(o.Seed)
	}
	defer func() {
		src.release()
		sink.holding(0)
	}()
	idx := 0
	// batch takes n rows from src and sends them; false when forming must
	// stop.
	batch := func(n int64) bool {
		rec, size, err := src.draw(ctx, n)
		if err != nil {
			sink.fail(err)
			return false
		}
		sink.holding(src.heldBytes() + size)
		ok := sink.send(batchResult{b: Batch{Record: rec, Index: idx}, size: size})
		idx++
		return ok
	}
	ready := func() bool {
		if src.rows() < o.BatchSize {
			return false
		}
		return src.rows() >= o.LocalShuffleBufferSize || src.heldBytes() >= sink.budget.limit/2
	}
	for sink.next(it) {
		src.add(sink.take(it))
		for ready() {
			if !batch(o.BatchSize) {
				return
			}
		}
	}
	if err := it.Err(); err != nil {
		sink.fail(err)
		return
	}
	for src.rows() >= o.BatchSize || (src.rows() > 0 && !o.DropLast) {
		if !batch(min(src.rows(), o.BatchSize)) {
			return
		}
	}
}

// blockTaker is a BlockIterator that can hand its current block over: the
// caller owns the record and its bytes in the budget from then on, and the
// iterator neither releases nor uncounts it.
type blockTaker interface {
	takeBlock() (rec arrow.RecordBatch, size int64)
}

// takeBlock takes it's current block: handed over by a blockTaker, or
// retained and counted anew in budget.
func takeBlock(it BlockIterator, budget *memBudget) (arrow.RecordBatch, int64) {
	if t, ok := it.(blockTaker); ok {
		return t.takeBlock()
	}
	b := it.Block()
	b.Record.Retain()
	budget.hold(b.Meta.SizeBytes)
	return b.Record, b.Meta.SizeBytes
}

// batchSource holds the rows form has not batched yet: in arrival order
// (inOrder) or for the local shuffle (shuffleBuffer). add takes over rec
// and the size it is counted for; draw returns n rows and the size they
// are counted for; heldBytes is what the rows still held are counted for.
type batchSource interface {
	add(rec arrow.RecordBatch, size int64)
	rows() int64
	draw(ctx context.Context, n int64) (arrow.RecordBatch, int64, error)
	heldBytes() int64
	release()
}

// inOrder is a batchSource that hands rows on in the order they came.
type inOrder struct{ held rowCarry }

func (c *inOrder) add(rec arrow.RecordBatch, size int64) { c.held.add(rec, size) }
func (c *inOrder) rows() int64                           { return c.held.rows }
func (c *inOrder) heldBytes() int64                      { return c.held.bytes }
func (c *inOrder) release()                              { c.held.release() }

func (c *inOrder) draw(_ context.Context, n int64) (arrow.RecordBatch, int64, error) {
	return c.held.cut(n)
}

// rowCarry holds rows, in order, that arrived in blocks and are not yet
// handed on: Batches cuts its batches from one, an equal split its rounds,
// a shard its windows.
type rowCarry struct {
	recs  []arrow.RecordBatch
	sizes []int64 // what each record is counted for in the budget
	rows  int64
	bytes int64 // the sum of sizes
	// sliced: recs[0] is the rest of a cut, a slice of a larger record
	// whose buffers it keeps alive (and is counted for).
	sliced bool
}

// add takes over rec (the caller's reference) and the size it is counted
// for, and appends its rows.
func (c *rowCarry) add(rec arrow.RecordBatch, size int64) {
	c.recs = append(c.recs, rec)
	c.sizes = append(c.sizes, size)
	c.rows += rec.NumRows()
	c.bytes += size
}

// prepend is add, for rows that go before those held.
func (c *rowCarry) prepend(rec arrow.RecordBatch, size int64) {
	c.recs = append([]arrow.RecordBatch{rec}, c.recs...)
	c.sizes = append([]int64{size}, c.sizes...)
	c.rows += rec.NumRows()
	c.bytes += size
	c.sliced = false
}

// release drops every row held.
func (c *rowCarry) release() {
	for _, r := range c.recs {
		r.Release()
	}
	c.recs, c.sizes, c.rows, c.bytes, c.sliced = nil, nil, 0, 0, false
}

// drop forgets the first record held (its reference goes to the caller).
func (c *rowCarry) drop() {
	c.rows -= c.recs[0].NumRows()
	c.bytes -= c.sizes[0]
	c.recs[0] = nil // the backing array must not keep it alive
	c.recs, c.sizes, c.sliced = c.recs[1:], c.sizes[1:], false
}

// cut returns the first n rows held (0 < n <= c.rows) and the size they
// are counted for, keeping the rest.
//
// A record taken whole, which the carry owns whole, is handed over as it
// is. Otherwise the rows are copied into buffers of their own (join): a
// zero-copy slice would keep all of its record's buffers alive while
// counted for a share of them. The rest of a record cut across stays a
// slice, counted for the whole record, which it keeps alive until it is
// cut in turn.
func (c *rowCarry) cut(n int64) (arrow.RecordBatch, int64, error) {
	if first := c.recs[0]; first.NumRows() == n && !c.sliced {
		size := c.sizes[0]
		c.drop()
		return first, size, nil
	}
	var parts []arrow.RecordBatch
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	var taken, partly int64 // partly: rows taken of the record cut across
	whole := 0              // records taken whole
	for _, r := range c.recs {
		k := min(r.NumRows(), n-taken)
		parts = append(parts, r.NewSlice(0, k))
		taken += k
		if k < r.NumRows() {
			partly = k
			break
		}
		whole++
		if taken == n {
			break
		}
	}
	head, size, err := joined(parts)
	if err != nil {
		return nil, 0, err
	}
	for range whole {
		c.recs[0].Release()
		c.drop()
	}
	if partly > 0 {
		r := c.recs[0]
		c.recs[0] = r.NewSlice(partly, r.NumRows())
		r.Release()
		c.rows -= partly
		c.sliced = true
	}
	return head, size, nil
}

// copyRows returns rows [from, to) of rec in buffers of their own, and
// their size.
func copyRows(rec arrow.RecordBatch, from, to int64) (arrow.RecordBatch, int64, error) {
	s := rec.NewSlice(from, to)
	defer s.Release()
	return joined([]arrow.RecordBatch{s})
}

// joined is join with the size of the record it returns.
func joined(recs []arrow.RecordBatch) (arrow.RecordBatch, int64, error) {
	out, err := join(recs)
	if err != nil {
		return nil, 0, err
	}
	return out, recordSize(out), nil
}

// concat joins records into one (join): one record is returned itself,
// retained.
func concat(recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	if len(recs) == 1 {
		recs[0].Retain()
		return recs[0], nil
	}
	return join(recs)
}

// join copies records into one with the first record's schema, taking
// each column by name (never by position); a record lacking a column, or
// holding it with another type, is an error.
func join(recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	sc := recs[0].Schema()
	cols := make([]arrow.Array, 0, sc.NumFields())
	defer func() {
		for _, a := range cols {
			a.Release()
		}
	}()
	var n int64
	for _, r := range recs {
		n += r.NumRows()
	}
	for _, f := range sc.Fields() {
		parts := make([]arrow.Array, len(recs))
		for i, r := range recs {
			idx := r.Schema().FieldIndices(f.Name)
			if len(idx) != 1 || !arrow.TypeEqual(r.Column(idx[0]).DataType(), f.Type) {
				return nil, fmt.Errorf("dataset: batching: %w: blocks disagree on column %q (%s vs %s)", ErrSchemaConflict, f.Name, sc, r.Schema())
			}
			parts[i] = r.Column(idx[0])
		}
		a, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			return nil, fmt.Errorf("dataset: batching: %w", err)
		}
		cols = append(cols, a)
	}
	return array.NewRecordBatch(sc, cols, n), nil
}

// take reorders rec's rows by perm.
func take(ctx context.Context, rec arrow.RecordBatch, perm []int) (arrow.RecordBatch, error) {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	for _, p := range perm {
		b.Append(int64(p))
	}
	idx := b.NewArray()
	defer idx.Release()
	out, err := compute.Take(ctx, *compute.DefaultTakeOptions(), compute.NewDatum(rec), compute.NewDatum(idx))
	if err != nil {
		return nil, fmt.Errorf("dataset: shuffle: %w", err)
	}
	defer out.Release()
	r := out.(*compute.RecordDatum).Value
	r.Retain()
	return r, nil
}

// batchSink is where a former puts its batches: an output queue, with the
// bytes the former holds and the batches it hands on counted in the
// execution's budget, and its waits timed.
type batchSink struct {
	ctx    context.Context
	budget *memBudget
	out    chan<- batchResult
	stats  *batchCounters
	held   int64 // what the former holds, as last reported
}

// take takes it's current block (takeBlock): its count becomes the
// former's.
func (s *batchSink) take(it BlockIterator) (arrow.RecordBatch, int64) {
	rec, size := takeBlock(it, s.budget)
	s.held += size
	return rec, size
}

// holding reports that the former now holds n bytes (rows it keeps and
// the batch it is about to send).
func (s *batchSink) holding(n int64) {
	s.budget.adjust(s.held, n)
	s.held = n
}

// next is it.Next, timed as waiting for input.
func (s *batchSink) next(it BlockIterator) bool {
	start := time.Now()
	ok := it.Next()
	s.stats.waitInput.Add(int64(time.Since(start)))
	return ok
}

// send hands r (whose bytes the former counted) to the queue, waiting while
// it is full; false, with r released and uncounted, when the context ended.
func (s *batchSink) send(r batchResult) bool {
	s.held -= r.size // the queue's now, or gone
	start := time.Now()
	defer func() { s.stats.waitConsumer.Add(int64(time.Since(start))) }()
	select {
	case s.out <- r:
		return true
	case <-s.ctx.Done():
		r.b.Record.Release()
		s.budget.let(r.size)
		return false
	}
}

// fail sends err; the former stops after it.
func (s *batchSink) fail(err error) {
	select {
	case s.out <- batchResult{err: err}:
	case <-s.ctx.Done():
	}
}
