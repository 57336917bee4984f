package dataset

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Split is one of the n streams of a StreamingSplit. It holds only a handle
// to the coordinator that owns the execution; Splits may be consumed on
// different goroutines at different speeds.
type Split struct {
	c     *coordinator
	i     int
	epoch int
}

// ErrSplitAbandoned is wrapped by the error the other splits get when one
// split stops pulling (without Close) for longer than AbandonTimeout.
var ErrSplitAbandoned = errors.New("dataset: a split was abandoned")

// coordinator owns the executions (one per epoch) behind a set of splits.
type coordinator struct {
	d       *Dataset
	n       int
	equal   bool
	chunk   int64 // rows per split per round, in equal mode
	abandon time.Duration

	mu      sync.Mutex
	cur     *epochRun
	changed chan struct{}
	stats   []batchCounters // per split, over its epochs
}

// epochRun is one execution, distributed to the splits.
type epochRun struct {
	e      int
	shared chan Block   // non-equal: every split pulls from it
	perSp  []chan Block // equal: one queue per split
	closed []chan struct{}
	once   []sync.Once
	active int // splits that have not finished this epoch
	done   chan struct{}
	err    error // set before done is closed
	cancel context.CancelFunc
	budget *memBudget // the execution's: blocks queued and held by the splits count in it
}

// StreamingSplit returns n splits fed by one coordinator that owns the
// execution: each epoch (each round of Batches or Iter calls on the
// splits) runs the dataset once and hands its blocks out. With equal, every
// split gets exactly the same number of rows (the remainder, fewer than n
// rows, is dropped), so with the same BatchSize and DropLast every split
// also yields the same number of batches — local shuffle included — as
// distributed training needs; a slow split then paces the others. Without
// equal, splits pull blocks from one shared queue: fast consumers get more.
// A split that is closed early (or whose consumer fails and closes it)
// stops receiving and never blocks the others. Equal splits are meant to be
// consumed concurrently: each holds only a couple of blocks, so one consumer
// reading its split to the end while another has not started waits for it.
func (d *Dataset) StreamingSplit(n int, equal bool) []*Split {
	return d.StreamingSplitWith(n, equal, nil)
}

// StreamingSplitWith is StreamingSplit with options.
func (d *Dataset) StreamingSplitWith(n int, equal bool, opts *SplitOptions) []*Split {
	if n <= 0 {
		panic("dataset: StreamingSplit with n <= 0")
	}
	o := opts.normalize()
	c := &coordinator{d: d, n: n, equal: equal, chunk: splitChunkRows, abandon: o.AbandonTimeout, changed: make(chan struct{}),
		stats: make([]batchCounters, n)}
	splits := make([]*Split, n)
	for i := range splits {
		splits[i] = &Split{c: c, i: i}
	}
	return splits
}

// Schema returns the dataset's schema from the Parquet footers; it never
// starts an execution.
func (s *Split) Schema(ctx context.Context) (*arrow.Schema, error) { return s.c.d.Schema(ctx) }

// Iter starts this split's next epoch and returns its blocks; ctx bounds
// both the wait for the epoch and the iteration (its end is the
// iterator's error). The epoch's execution starts when the first split
// asks for it; a split asking for the next epoch waits until every split
// has finished or closed the current one (or AbandonTimeout passes: then
// ErrSplitAbandoned). A failed Iter does not advance the split's epoch.
func (s *Split) Iter(ctx context.Context) (BlockIterator, error) {
	run, err := s.c.join(ctx, s.epoch+1)
	if err != nil {
		return nil, err
	}
	s.epoch++
	return &splitIterator{ctx: ctx, run: run, i: s.i, c: s.c}, nil
}

// Stats returns this split's counters over its epochs: the rows and blocks
// its iterators delivered, the current epoch's memory (the whole
// execution's, shared by the splits), the time its iterators waited for
// blocks, and the time the coordinator waited on this split's full queue.
// Batches on the split have their own, per batch: BatchIterator.Stats.
func (s *Split) Stats() BatchStats {
	st := &s.c.stats[s.i]
	var used, high, reads int64
	s.c.mu.Lock()
	if s.c.cur != nil {
		used, high = s.c.cur.budget.usage()
		reads = s.c.cur.budget.reads.Load()
	}
	s.c.mu.Unlock()
	return BatchStats{Rows: st.rows.Load(), Batches: st.batches.Load(), HeldBytes: used, MaxHeldBytes: high, ReadsRunning: reads,
		WaitingForInput: time.Duration(st.waitInput.Load()), WaitingForConsumer: time.Duration(st.waitConsumer.Load())}
}

// Batches is Iter re-sliced into batches (see Dataset.Batches).
func (s *Split) Batches(ctx context.Context, opts *BatchOptions) (*BatchIterator, error) {
	it, err := s.Iter(ctx)
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	return newBatchIterator(parent, ctx, cancel, it, it.(*splitIterator).run.budget, opts, form), nil
}

// join returns epoch e's run, starting it if this is the first split to
// ask, after waiting for epoch e-1 to finish.
func (c *coordinator) join(ctx context.Context, e int) (*epochRun, error) {
	var abandoned <-chan time.Time
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dataset: split waiting for epoch %d: %w", e, err)
		}
		c.mu.Lock()
		cur := c.cur
		switch {
		case cur != nil && cur.e == e:
			c.mu.Unlock()
			return cur, nil
		case cur == nil || (cur.e == e-1 && cur.active == 0):
			run := c.start(e)
			c.mu.Unlock()
			return run, nil
		case cur.e > e:
			c.mu.Unlock()
			return nil, fmt.Errorf("dataset: split asked for epoch %d, the others are at %d", e, cur.e)
		}
		ch := c.changed
		c.mu.Unlock()
		if abandoned == nil {
			t := time.NewTimer(c.abandon)
			defer t.Stop()
			abandoned = t.C
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("dataset: split waiting for epoch %d: %w", e, ctx.Err())
		case <-abandoned:
			return nil, fmt.Errorf("%w: epoch %d not finished by every split after %v", ErrSplitAbandoned, e-1, c.abandon)
		}
	}
}

// start begins epoch e; c.mu is held.
func (c *coordinator) start(e int) *epochRun {
	ctx, cancel := context.WithCancel(context.Background())
	run := &epochRun{e: e, active: c.n, done: make(chan struct{}), cancel: cancel,
		closed: make([]chan struct{}, c.n), once: make([]sync.Once, c.n)}
	for i := range run.closed {
		run.closed[i] = make(chan struct{})
	}
	if c.equal {
		run.perSp = make([]chan Block, c.n)
		for i := range run.perSp {
			run.perSp[i] = make(chan Block, 2)
		}
	} else {
		run.shared = make(chan Block, c.n)
	}
	it := c.d.Iter(ctx)
	run.budget = it.budget
	c.cur = run
	close(c.changed)
	c.changed = make(chan struct{})
	go c.distribute(ctx, run, it)
	return run
}

// finish marks split i done with the run; the next epoch may start when
// every split is.
func (c *coordinator) finish(run *epochRun, i int) {
	run.once[i].Do(func() {
		close(run.closed[i])
		c.mu.Lock()
		run.active--
		last := run.active == 0
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		if last {
			run.cancel()
		}
	})
}

// distribute runs the execution it and hands out its blocks.
func (c *coordinator) distribute(ctx context.Context, run *epochRun, it *Iterator) {
	defer func() {
		it.Close()
		if err := it.Err(); err != nil && ctx.Err() == nil && run.err == nil {
			run.err = err
		}
		if run.shared != nil {
			close(run.shared)
		}
		for _, ch := range run.perSp {
			close(ch)
		}
		close(run.done)
	}()
	if !c.equal {
		for it.Next() {
			source := it.Block().Meta.Source
			rec, size := it.takeBlock()
			b := newBlock(rec, source)
			b.Meta.SizeBytes = size
			select {
			case run.shared <- b:
			case <-ctx.Done():
				rec.Release()
				run.budget.let(size)
				return
			}
		}
		return
	}
	var carry rowCarry
	defer func() {
		run.budget.let(carry.bytes)
		carry.release()
	}()
	// round hands each split per rows, cut from the front of carry.
	round := func(per int64) bool {
		for i := range c.n {
			was := carry.bytes
			rec, size, err := carry.cut(per)
			if err != nil {
				run.err = err
				return false
			}
			run.budget.adjust(was, carry.bytes+size) // cut may have copied the rows
			piece := newBlock(rec, "")
			piece.Meta.SizeBytes = size
			if !c.give(ctx, run, i, piece) {
				return false
			}
		}
		return true
	}
	for it.Next() {
		carry.add(it.takeBlock())
		for carry.rows >= int64(c.n)*c.chunk {
			if !round(c.chunk) {
				return
			}
		}
	}
	if it.Err() != nil {
		return
	}
	if per := carry.rows / int64(c.n); per > 0 {
		round(per) // the remainder, fewer than n rows, is dropped
	}
}

// give sends a piece to split i, unless the split has finished (then the
// piece is dropped: a closed split never blocks the others). A piece not
// given is released and uncounted.
func (c *coordinator) give(ctx context.Context, run *epochRun, i int, b Block) bool {
	drop := func() {
		b.Record.Release()
		run.budget.let(b.Meta.SizeBytes)
	}
	select {
	case <-run.closed[i]:
		drop()
		return true
	default:
	}
	t := time.NewTimer(c.abandon)
	defer t.Stop()
	start := time.Now()
	defer func() { c.stats[i].waitConsumer.Add(int64(time.Since(start))) }()
	select {
	case run.perSp[i] <- b:
		return true
	case <-run.closed[i]:
		drop()
		return true
	case <-ctx.Done():
		drop()
		return false
	case <-t.C:
		drop()
		run.err = fmt.Errorf("%w: split %d took no block for %v", ErrSplitAbandoned, i, c.abandon)
		return false
	}
}

// splitIterator is the BlockIterator of one split's blocks of one epoch.
type splitIterator struct {
	ctx   context.Context
	c     *coordinator
	run   *epochRun
	i     int
	cur   Block
	err   error
	ended bool
}

func (s *splitIterator) queue() chan Block {
	if s.run.shared != nil {
		return s.run.shared
	}
	return s.run.perSp[s.i]
}

// releaseCur releases the current block and uncounts it.
func (s *splitIterator) releaseCur() {
	if s.cur.Record != nil {
		s.cur.Record.Release()
		s.run.budget.let(s.cur.Meta.SizeBytes)
		s.cur = Block{}
	}
}

// takeBlock hands the current block over (see blockTaker).
func (s *splitIterator) takeBlock() (arrow.RecordBatch, int64) {
	rec, size := s.cur.Record, s.cur.Meta.SizeBytes
	s.cur = Block{}
	return rec, size
}

// Next advances to the next block, releasing the previous one.
func (s *splitIterator) Next() bool {
	s.releaseCur()
	if s.ended {
		return false
	}
	if err := s.ctx.Err(); err != nil {
		s.err = fmt.Errorf("dataset: split %d: %w", s.i, err)
		s.ended = true
		s.c.finish(s.run, s.i)
		return false
	}
	st := &s.c.stats[s.i]
	start := time.Now()
	defer func() { st.waitInput.Add(int64(time.Since(start))) }()
	select {
	case b, ok := <-s.queue():
		if ok {
			s.cur = b
			st.rows.Add(b.Meta.NumRows)
			st.batches.Add(1)
			return true
		}
		<-s.run.done
		s.err = s.run.err
	case <-s.run.closed[s.i]:
	case <-s.ctx.Done():
		s.err = fmt.Errorf("dataset: split %d: %w", s.i, s.ctx.Err())
	}
	s.ended = true
	s.c.finish(s.run, s.i)
	return false
}

// Block returns the current block (valid until the next Next or Close).
func (s *splitIterator) Block() Block { return s.cur }

// Err returns the error that ended the epoch, if any.
func (s *splitIterator) Err() error { return s.err }

// Close ends this split's epoch early: it receives nothing more and never
// holds up the other splits. Idempotent.
func (s *splitIterator) Close() error {
	s.releaseCur()
	s.ended = true
	s.c.finish(s.run, s.i)
	// In equal mode, drain what was already queued for this split.
	if s.run.perSp != nil {
		for {
			select {
			case b, ok := <-s.run.perSp[s.i]:
				if !ok {
					return nil
				}
				b.Record.Release()
				s.run.budget.let(b.Meta.SizeBytes)
			default:
				return nil
			}
		}
	}
	return nil
}
