package dataset

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Batch is one batch of rows.
type Batch struct {
	// Record holds the rows. It is released by the next call to Next.
	Record arrow.RecordBatch
	// Collated is Collate's result (nil without Collate).
	Collated any
	// Index is the batch's position in the stream, from 0.
	Index int
}

// BatchIterator streams batches. It is not safe for concurrent use.
type BatchIterator struct {
	parent context.Context // the caller's: its end is the iteration's error
	cancel context.CancelFunc
	out    chan batchResult
	wg     sync.WaitGroup
	cur    Batch
	err    error
	ended  bool

	order   bool
	next    int
	pending map[int]batchResult
}

type batchResult struct {
	b   Batch
	err error
}

// Batches starts an execution and re-slices its blocks into batches.
// Cancelling ctx ends it with Err wrapping ctx's error.
func (d *Dataset) Batches(ctx context.Context, opts *BatchOptions) *BatchIterator {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	return newBatchIterator(parent, ctx, cancel, d.Iter(ctx), opts, form)
}

// formFunc reads blocks from it and sends batches until it ends or send
// returns false: form for Batches, batchCut.form for ShardBatches.
type formFunc func(ctx context.Context, it BlockIterator, o *BatchOptions, send func(batchResult) bool)

// newBatchIterator re-slices the blocks of it into batches with formBatches;
// cancel stops it (ctx is parent's child that cancel cancels).
func newBatchIterator(parent, ctx context.Context, cancel context.CancelFunc, it BlockIterator, opts *BatchOptions, formBatches formFunc) *BatchIterator {
	o := opts.normalize()
	raw := make(chan batchResult, o.PrefetchBatches)
	bi := &BatchIterator{parent: parent, cancel: cancel, order: o.PreserveOrder && o.Collate != nil, pending: map[int]batchResult{}}
	bi.wg.Go(func() {
		defer close(raw)
		defer it.Close()
		formBatches(ctx, it, &o, func(r batchResult) bool {
			select {
			case raw <- r:
				return true
			case <-ctx.Done():
				if r.b.Record != nil {
					r.b.Record.Release()
				}
				return false
			}
		})
	})
	if o.Collate == nil {
		bi.out = raw
		return bi
	}
	bi.out = make(chan batchResult, o.CollateWorkers)
	var in sync.Mutex // the workers share the input under a lock
	var workers sync.WaitGroup
	for range o.CollateWorkers {
		workers.Go(func() {
			for {
				in.Lock()
				r, ok := <-raw
				in.Unlock()
				if !ok {
					return
				}
				if r.err == nil {
					r.b.Collated, r.err = callUser("Collate", func() (any, error) { return o.Collate(ctx, r.b.Record) })
				}
				select {
				case bi.out <- r:
				case <-ctx.Done():
					if r.b.Record != nil {
						r.b.Record.Release()
					}
				}
			}
		})
	}
	bi.wg.Go(func() {
		workers.Wait()
		close(bi.out)
	})
	return bi
}

// form reads blocks and sends batches of o.BatchSize rows: in order, or
// drawn from a local shuffle buffer.
func form(ctx context.Context, it BlockIterator, o *BatchOptions, send func(batchResult) bool) {
	var src batchSource
	if o.LocalShuffleBufferSize > 0 {
		src = newShuffleBuffer(o.Seed)
	} else {
		src = &inOrder{}
	}
	defer src.release()
	idx := 0
	// batch takes n rows from src and sends them; false when forming must
	// stop.
	batch := func(n int64) bool {
		rec, err := src.draw(ctx, n)
		if err != nil {
			send(batchResult{err: err})
			return false
		}
		ok := send(batchResult{b: Batch{Record: rec, Index: idx}})
		idx++
		return ok
	}
	need := max(o.BatchSize, o.LocalShuffleBufferSize)
	for it.Next() {
		src.add(it.Block().Record)
		for src.rows() >= need {
			if !batch(o.BatchSize) {
				return
			}
		}
	}
	if err := it.Err(); err != nil {
		send(batchResult{err: err})
		return
	}
	for src.rows() >= o.BatchSize || (src.rows() > 0 && !o.DropLast) {
		if !batch(min(src.rows(), o.BatchSize)) {
			return
		}
	}
}

// batchSource holds the rows form has not batched yet: in arrival order
// (inOrder) or for the local shuffle (shuffleBuffer).
type batchSource interface {
	add(rec arrow.RecordBatch)
	rows() int64
	draw(ctx context.Context, n int64) (arrow.RecordBatch, error)
	heldBytes() int64
	release()
}

// inOrder is a batchSource that hands rows on in the order they came.
type inOrder struct{ held rowCarry }

func (c *inOrder) add(rec arrow.RecordBatch) { c.held.add(rec) }
func (c *inOrder) rows() int64               { return c.held.rows }
func (c *inOrder) release()                  { c.held.release() }

func (c *inOrder) draw(_ context.Context, n int64) (arrow.RecordBatch, error) {
	return c.held.cut(n)
}

func (c *inOrder) heldBytes() int64 {
	var n int64
	for _, r := range c.held.recs {
		n += recordSize(r)
	}
	return n
}

// rowCarry holds rows, in order, that arrived in blocks and are not yet
// handed on: Batches cuts its batches from one, an equal split its rounds.
type rowCarry struct {
	recs []arrow.RecordBatch
	rows int64
}

// add retains rec and appends its rows.
func (c *rowCarry) add(rec arrow.RecordBatch) {
	rec.Retain()
	c.recs = append(c.recs, rec)
	c.rows += rec.NumRows()
}

// release drops every row held.
func (c *rowCarry) release() {
	for _, r := range c.recs {
		r.Release()
	}
	c.recs, c.rows = nil, 0
}

// cut joins the rows held into one record and returns its first n rows
// (n <= c.rows), keeping the rest.
func (c *rowCarry) cut(n int64) (arrow.RecordBatch, error) {
	all, err := concat(c.recs)
	if err != nil {
		return nil, err
	}
	c.release()
	head := all.NewSlice(0, n)
	if rest := all.NumRows() - n; rest > 0 {
		c.recs, c.rows = []arrow.RecordBatch{all.NewSlice(n, all.NumRows())}, rest
	}
	all.Release()
	return head, nil
}

// concat joins records into one with the first record's schema, taking
// each column by name (never by position); a record lacking a column, or
// holding it with another type, is an error.
func concat(recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	if len(recs) == 1 {
		recs[0].Retain()
		return recs[0], nil
	}
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

// Next advances to the next batch, releasing the previous one.
func (bi *BatchIterator) Next() bool {
	if bi.cur.Record != nil {
		bi.cur.Record.Release()
		bi.cur = Batch{}
	}
	for !bi.ended {
		if r, ok := bi.pending[bi.next]; ok && bi.order {
			delete(bi.pending, bi.next)
			bi.next++
			bi.cur = r.b
			return true
		}
		r, ok := <-bi.out
		if !ok {
			bi.ended = true
			if err := bi.parent.Err(); err != nil && bi.err == nil {
				// Cancelled: whatever was dropped on the way, the stream
				// did not reach its end.
				bi.err = fmt.Errorf("dataset: batches: %w", err)
			}
			break
		}
		if r.err != nil {
			if !errors.Is(r.err, context.Canceled) || bi.err == nil {
				bi.err = r.err
			}
			bi.Close()
			if err := bi.parent.Err(); err != nil && !errors.Is(bi.err, err) {
				bi.err = fmt.Errorf("%w (%w)", err, bi.err)
			}
			return false
		}
		if bi.order && r.b.Index != bi.next {
			bi.pending[r.b.Index] = r
			continue
		}
		bi.next++
		bi.cur = r.b
		return true
	}
	return false
}

// Batch returns the current batch.
func (bi *BatchIterator) Batch() Batch { return bi.cur }

// Err returns the error that ended the iteration, if any.
func (bi *BatchIterator) Err() error { return bi.err }

// Close stops the execution and waits for its goroutines. Idempotent.
func (bi *BatchIterator) Close() error {
	if bi.cur.Record != nil {
		bi.cur.Record.Release()
		bi.cur = Batch{}
	}
	bi.cancel()
	for r := range bi.out {
		if r.b.Record != nil {
			r.b.Record.Release()
		}
	}
	for _, r := range bi.pending {
		r.b.Record.Release()
	}
	bi.pending = map[int]batchResult{}
	bi.ended = true
	bi.wg.Wait()
	return nil
}
