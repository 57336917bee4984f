package dataset

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
)

// ExecStats are the counters of one execution.
type ExecStats struct {
	Read            OpStats   // the read: tasks, rows, bytes, wall time, time blocked on budget
	Ops             []OpStats // the operators, in order
	LoopIterations  int64     // passes of the scheduling loop
	BudgetHighWater int64     // most bytes the execution held at once: reads, blocks, and what the batches and splits over it hold
	ReadsRunning    int64     // fetches and decodes of read tasks running now
	BudgetStalls    int64     // times a read could not start for lack of budget
	ErroredBlocks   int64     // failed read tasks and unreadable files skipped (MaxErroredBlocks)
	Errors          []error   // the errors of those blocks, in the order they happened
	Ranges          int64     // ranged reads of column-chunk data
	FetchedBytes    int64     // bytes those reads fetched
	Fallbacks       int64     // reads outside the planned ranges (should be 0)
	FootersPending  int64     // footers not yet resolved (at the time of the call)
}

// BlockIterator is a stream of blocks: Dataset.Iter returns one (an
// *Iterator, which adds Stats) and so does Split.Iter (one split's share of
// one epoch). It is not safe for concurrent use.
//
// Next advances to the next block, releasing the previous one, and reports
// whether there is one; it returns false once the stream ended or the
// context it was started with ended. Block returns the current block, whose
// record is valid until the next call to Next or Close (Retain it to keep
// it longer). Err returns the error that ended the stream: nil only when it
// reached its end, an error wrapping the context's when that ended first.
// Close stops the stream early, releases what it holds and never blocks on
// other consumers; it is idempotent.
type BlockIterator interface {
	Next() bool
	Block() Block
	Err() error
	Close() error
}

var _ BlockIterator = (*Iterator)(nil)

// Iterator streams the blocks of one execution: the BlockIterator of
// Dataset.Iter, with the execution's Stats. It is not safe for concurrent
// use; Close it when done.
type Iterator struct {
	ctx    context.Context
	cancel context.CancelFunc
	out    chan Block
	budget *memBudget    // counts every byte of the execution, consumer side included
	hungry chan struct{} // cap 1: Next found nothing queued and waits
	// waitingAt is the count of blocks received when the consumer last
	// began to wait for one (-1: never): it waits now when that is every
	// block the loop handed over.
	waitingAt atomic.Int64
	received  int64         // blocks received from out (the consumer's goroutine only)
	done      chan struct{} // closed when the loop has exited
	err       error         // set by the loop before close(out)

	cur      Block
	curSize  int64
	post     []*operator
	postSeen []int64 // rows seen by each Limit in post
	ended    bool
	nextErr  error

	d *Dataset
	s *execState
}

// execState is what the loop shares with Stats.
type execState struct {
	iterations, stalls, errored, ranges, fetched, fallbacks, pending atomic.Int64
	mu                                                               sync.Mutex
	read                                                             OpStats
	errors                                                           []error
}

// Iter starts an execution and returns its iterator. Cancelling ctx (or
// Close) stops it.
func (d *Dataset) Iter(ctx context.Context) *Iterator {
	ctx, cancel := context.WithCancel(ctx)
	pre, limit, post := splitAtLimit(d.ops)
	it := &Iterator{
		ctx: ctx, cancel: cancel, d: d, s: &execState{},
		out: make(chan Block), budget: newMemBudget(d.opts.MemoryBudget), hungry: make(chan struct{}, 1), done: make(chan struct{}),
		post: post, postSeen: make([]int64, len(post)),
	}
	it.s.read.Name = "ReadParquet"
	it.waitingAt.Store(-1)
	go newLoop(it, pre, limit).run()
	return it
}

// splitAtLimit splits the operators at the first Limit: the ones before
// run on the workers, the Limit stops upstream reads, the rest run on the
// consumer's goroutine in Next.
func splitAtLimit(ops []*operator) (pre []*operator, limit int64, post []*operator) {
	for i, op := range ops {
		if op.fn == nil {
			return ops[:i], op.limit, ops[i+1:]
		}
	}
	return ops, -1, nil
}

// Next advances to the next block and reports whether there is one. The
// previous block's record is released.
func (it *Iterator) Next() bool {
	it.releaseCur()
	for !it.ended {
		b, ok := it.receive()
		if !ok {
			it.ended = true
			<-it.done
			it.nextErr = it.err
			return false
		}
		size := b.Meta.SizeBytes
		rec, err := it.applyPost(b.Record)
		if err != nil {
			it.free(size)
			it.nextErr = err
			it.Close()
			return false
		}
		if rec == nil { // cut to nothing by a later Limit
			it.free(size)
			continue
		}
		it.cur = newBlock(rec, b.Meta.Source)
		it.curSize = size
		return true
	}
	return false
}

func (it *Iterator) applyPost(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	for i, op := range it.post {
		if op.fn != nil {
			out, err := op.apply(it.ctx, rec)
			if err != nil {
				return nil, err
			}
			rec = out
			continue
		}
		left := op.limit - it.postSeen[i]
		if left <= 0 {
			rec.Release()
			return nil, nil
		}
		if rec.NumRows() > left {
			s := rec.NewSlice(0, left)
			rec.Release()
			rec = s
		}
		it.postSeen[i] += rec.NumRows()
	}
	return rec, nil
}

func (it *Iterator) releaseCur() {
	if it.cur.Record != nil {
		it.cur.Record.Release()
		it.cur.Record = nil
		it.free(it.curSize)
	}
}

// receive takes the next block from the loop, telling it first when none
// is queued (the loop may then start a read past the budget: see
// loop.startDecodes).
func (it *Iterator) receive() (Block, bool) {
	select {
	case b, ok := <-it.out:
		it.countReceived(ok)
		return b, ok
	default:
	}
	it.waitingAt.Store(it.received)
	select {
	case it.hungry <- struct{}{}:
	default:
	}
	b, ok := <-it.out
	it.countReceived(ok)
	return b, ok
}

func (it *Iterator) countReceived(ok bool) {
	if ok {
		it.received++
	}
}

// free uncounts a consumed block's bytes.
func (it *Iterator) free(n int64) { it.budget.let(n) }

// takeBlock hands the current block over: the caller owns its record and
// its bytes in the budget.
func (it *Iterator) takeBlock() (arrow.RecordBatch, int64) {
	rec, size := it.cur.Record, it.curSize
	it.cur.Record, it.curSize = nil, 0
	return rec, size
}

// Block returns the current block. Its record is valid until the next call
// to Next or Close; Retain it to keep it longer.
func (it *Iterator) Block() Block { return it.cur }

// Err returns the error that ended the iteration, if any.
func (it *Iterator) Err() error { return it.nextErr }

// Close stops the execution, releases what it holds and waits for its
// goroutines. It is idempotent.
func (it *Iterator) Close() error {
	it.releaseCur()
	it.cancel()
	if !it.ended {
		it.ended = true
		for b := range it.out {
			b.Record.Release()
			it.free(b.Meta.SizeBytes)
		}
	}
	<-it.done
	return nil
}

// Stats returns the execution's counters so far.
func (it *Iterator) Stats() ExecStats {
	s := it.s
	s.mu.Lock()
	read, errs := s.read, slices.Clone(s.errors)
	s.mu.Unlock()
	_, high := it.budget.usage()
	es := ExecStats{
		Read: read, LoopIterations: s.iterations.Load(), BudgetHighWater: high, ReadsRunning: it.budget.reads.Load(), BudgetStalls: s.stalls.Load(),
		ErroredBlocks: s.errored.Load(), Ranges: s.ranges.Load(), FetchedBytes: s.fetched.Load(),
		Fallbacks: s.fallbacks.Load(), FootersPending: s.pending.Load(), Errors: errs,
	}
	for _, op := range it.d.ops {
		if op.fn != nil {
			es.Ops = append(es.Ops, op.snapshot())
		}
	}
	return es
}
