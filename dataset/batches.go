package dataset

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
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

// BatchStats are the counters of a batch stream. Memory is the whole
// pipeline's: the execution's budget counts every byte from the reads to
// the batch the consumer holds.
type BatchStats struct {
	Rows    int64 // rows of the batches Next delivered
	Batches int64 // batches Next delivered
	// HeldBytes and MaxHeldBytes are the bytes the pipeline holds now and
	// held at most: reads in flight, blocks, rows waiting to be batched,
	// batches queued, being collated, parked for order, and current.
	HeldBytes, MaxHeldBytes int64
	// ReadsRunning is the execution's read tasks running now.
	ReadsRunning int64
	// WaitingForInput is the time the batch former waited for blocks;
	// WaitingForConsumer the time it and the collate workers waited on a
	// full queue (the consumer kept them waiting).
	WaitingForInput, WaitingForConsumer time.Duration
}

// batchCounters are a BatchIterator's counters, written by its goroutines.
type batchCounters struct {
	rows, batches, waitInput, waitConsumer atomic.Int64
}

// BatchIterator streams batches. It is not safe for concurrent use.
type BatchIterator struct {
	parent context.Context // the caller's: its end is the iteration's error
	cancel context.CancelFunc
	budget *memBudget
	stats  *batchCounters
	out    chan batchResult
	// raw is what the batch former makes: out itself without Collate,
	// else what the collate workers pull from.
	raw    chan batchResult
	tokens chan struct{} // with Collate: one per batch pulled and not yet delivered
	wg     sync.WaitGroup
	cur    batchResult
	err    error
	ended  bool

	order   bool
	next    int
	pending map[int]batchResult
}

// batchResult is a batch with the bytes it is counted for, or an error.
type batchResult struct {
	b    Batch
	size int64
	err  error
}

// Batches starts an execution and re-slices its blocks into batches.
// Cancelling ctx ends it with Err wrapping ctx's error.
func (d *Dataset) Batches(ctx context.Context, opts *BatchOptions) *BatchIterator {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	it := d.Iter(ctx)
	return newBatchIterator(parent, ctx, cancel, it, it.budget, opts, form)
}

// newBatchIterator re-slices the blocks of it into batches with formBatches,
// counting what it holds in budget; cancel stops it (ctx is parent's child
// that cancel cancels).
func newBatchIterator(parent, ctx context.Context, cancel context.CancelFunc, it BlockIterator, budget *memBudget, opts *BatchOptions, formBatches formFunc) *BatchIterator {
	o := opts.normalize()
	raw := make(chan batchResult, o.PrefetchBatches)
	bi := &BatchIterator{parent: parent, cancel: cancel, budget: budget, stats: &batchCounters{}, raw: raw,
		order: o.PreserveOrder && o.Collate != nil, pending: map[int]batchResult{}}
	sink := &batchSink{ctx: ctx, budget: budget, out: raw, stats: bi.stats}
	bi.wg.Go(func() {
		defer close(raw)
		defer it.Close()
		formBatches(ctx, it, &o, sink)
	})
	if o.Collate == nil {
		bi.out = raw
		return bi
	}
	bi.out = make(chan batchResult, o.CollateWorkers)
	bi.tokens = make(chan struct{}, 2*o.CollateWorkers)
	var in sync.Mutex // the workers share the input under a lock
	var workers sync.WaitGroup
	for range o.CollateWorkers {
		workers.Go(func() { bi.collateWorker(ctx, &in, raw, o.Collate) })
	}
	bi.wg.Go(func() {
		workers.Wait()
		close(bi.out)
	})
	return bi
}

// collateWorker pulls batches from raw (under in), collates them and
// queues them. A batch is pulled only with a token, given back when the
// consumer takes the batch in order: at most 2*CollateWorkers batches are
// between raw and the consumer, parked for order included. The stop check
// comes under the input lock, before pulling and before collating, so no
// work starts after Close.
func (bi *BatchIterator) collateWorker(ctx context.Context, in *sync.Mutex, raw <-chan batchResult, collate func(context.Context, arrow.RecordBatch) (any, error)) {
	for {
		select {
		case bi.tokens <- struct{}{}:
		case <-ctx.Done():
			return
		}
		in.Lock()
		if ctx.Err() != nil {
			in.Unlock()
			return
		}
		r, ok := <-raw
		in.Unlock()
		if !ok {
			<-bi.tokens
			return
		}
		if ctx.Err() != nil {
			bi.drop(r)
			return
		}
		if r.err == nil {
			r.b.Collated, r.err = callUser("Collate", func() (any, error) { return collate(ctx, r.b.Record) })
		}
		start := time.Now()
		select {
		case bi.out <- r:
		case <-ctx.Done():
			bi.drop(r)
		}
		bi.stats.waitConsumer.Add(int64(time.Since(start)))
	}
}

// drop releases a batch that will not be delivered and gives its token
// back.
func (bi *BatchIterator) drop(r batchResult) {
	if r.b.Record != nil {
		r.b.Record.Release()
		bi.budget.let(r.size)
	}
	if bi.tokens != nil {
		select {
		case <-bi.tokens:
		default:
		}
	}
}

// Next advances to the next batch, releasing the previous one.
func (bi *BatchIterator) Next() bool {
	bi.releaseCur()
	for !bi.ended {
		if r, ok := bi.pending[bi.next]; ok && bi.order {
			delete(bi.pending, bi.next)
			bi.deliver(r)
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
			bi.drop(r)
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
		bi.deliver(r)
		return true
	}
	return false
}

// deliver makes r the current batch and gives its token back.
func (bi *BatchIterator) deliver(r batchResult) {
	bi.next++
	bi.cur = r
	bi.stats.rows.Add(r.b.Record.NumRows())
	bi.stats.batches.Add(1)
	if bi.tokens != nil {
		<-bi.tokens
	}
}

func (bi *BatchIterator) releaseCur() {
	if bi.cur.b.Record != nil {
		bi.cur.b.Record.Release()
		bi.budget.let(bi.cur.size)
	}
	bi.cur = batchResult{}
}

// Batch returns the current batch.
func (bi *BatchIterator) Batch() Batch { return bi.cur.b }

// Err returns the error that ended the iteration, if any.
func (bi *BatchIterator) Err() error { return bi.err }

// Stats returns the stream's counters so far. It is safe to call from any
// goroutine.
func (bi *BatchIterator) Stats() BatchStats {
	used, high := bi.budget.usage()
	return BatchStats{
		Rows: bi.stats.rows.Load(), Batches: bi.stats.batches.Load(),
		HeldBytes: used, MaxHeldBytes: high, ReadsRunning: bi.budget.reads.Load(),
		WaitingForInput:    time.Duration(bi.stats.waitInput.Load()),
		WaitingForConsumer: time.Duration(bi.stats.waitConsumer.Load()),
	}
}

// Close stops the execution and waits for its goroutines. Idempotent.
func (bi *BatchIterator) Close() error {
	bi.releaseCur()
	bi.cancel()
	for r := range bi.out {
		bi.drop(r)
	}
	for _, r := range bi.pending {
		bi.drop(r)
	}
	bi.pending = map[int]batchResult{}
	bi.ended = true
	bi.wg.Wait()
	// With Collate, the batches formed and not yet pulled by a worker wait
	// in raw, which the former closed when it stopped: the workers stop
	// without draining it, and their bytes would stay counted in the
	// budget (a split's is the epoch's, shared with the other splits).
	for r := range bi.raw {
		bi.drop(r)
	}
	return nil
}
