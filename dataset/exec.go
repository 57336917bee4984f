package dataset

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ExecStats are the counters of one execution.
type ExecStats struct {
	Read            OpStats   // the read: tasks, rows, bytes, wall time, time blocked on budget
	Ops             []OpStats // the operators, in order
	LoopIterations  int64     // passes of the scheduling loop
	BudgetHighWater int64     // most bytes of blocks in flight at once
	BudgetStalls    int64     // times a read could not start for lack of budget
	ErroredBlocks   int64     // failed read tasks skipped (MaxErroredBlocks)
	Ranges          int64     // ranged reads of column-chunk data
	FetchedBytes    int64     // bytes those reads fetched
	Fallbacks       int64     // reads outside the planned ranges (should be 0)
	FootersPending  int64     // footers not yet resolved (at the time of the call)
}

// Iterator streams the blocks of one execution. It is not safe for
// concurrent use; Close it when done.
type Iterator struct {
	ctx    context.Context
	cancel context.CancelFunc
	out    chan Block
	freed  chan int64
	done   chan struct{} // closed when the loop has exited
	err    error         // set by the loop before close(out)

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
	iterations, highWater, stalls, errored, ranges, fetched, fallbacks, pending atomic.Int64
	mu                                                                          sync.Mutex
	read                                                                        OpStats
}

// Iter starts an execution and returns its iterator. Cancelling ctx (or
// Close) stops it.
func (d *Dataset) Iter(ctx context.Context) *Iterator {
	ctx, cancel := context.WithCancel(ctx)
	pre, limit, post := splitAtLimit(d.ops)
	it := &Iterator{
		ctx: ctx, cancel: cancel, d: d, s: &execState{},
		out: make(chan Block), freed: make(chan int64, 64), done: make(chan struct{}),
		post: post, postSeen: make([]int64, len(post)),
	}
	it.s.read.Name = "ReadParquet"
	l := &loop{it: it, d: d, opts: d.opts, pre: pre, limit: limit}
	go l.run()
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
		b, ok := <-it.out
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
		it.cur = Block{Record: rec, Meta: BlockMetadata{NumRows: rec.NumRows(), SizeBytes: recordSize(rec), Schema: rec.Schema(), Source: b.Meta.Source}}
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

// free tells the loop a consumed block's bytes are no longer in flight.
func (it *Iterator) free(n int64) {
	select {
	case it.freed <- n:
	case <-it.done:
	}
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
		}
	}
	<-it.done
	return nil
}

// Stats returns the execution's counters so far.
func (it *Iterator) Stats() ExecStats {
	s := it.s
	s.mu.Lock()
	read := s.read
	s.mu.Unlock()
	es := ExecStats{
		Read: read, LoopIterations: s.iterations.Load(), BudgetHighWater: s.highWater.Load(), BudgetStalls: s.stalls.Load(),
		ErroredBlocks: s.errored.Load(), Ranges: s.ranges.Load(), FetchedBytes: s.fetched.Load(),
		Fallbacks: s.fallbacks.Load(), FootersPending: s.pending.Load(),
	}
	for _, op := range it.d.ops {
		if op.fn != nil {
			es.Ops = append(es.Ops, op.snapshot())
		}
	}
	return es
}

// loop is the scheduling loop of one execution. It never does I/O itself
// (except footers in Inline mode, by design): reads run on workers, footers
// on the metadata goroutine.
type loop struct {
	it    *Iterator
	d     *Dataset
	opts  ReadOptions
	pre   []*operator
	limit int64 // -1: none

	readCtx    context.Context // reads and footers; cancelled once a Limit is met
	readCancel context.CancelFunc
	footers    chan footerResult
	results    chan taskResult
	sources    []*source
	resolved   int // files whose footer is in
	tasks      []*task
	next       int // next task to launch
	running    int
	inFlight   int64
	done       map[int]taskResult // finished tasks awaiting order
	emitNext   int                // PreserveOrder: next task index to emit
	queue      []Block
	emitted    int64 // rows queued to the consumer
	failed     error
	blockedAt  time.Time
}

type footerResult struct {
	idx int
	f   *footer
	err error
}

type taskResult struct {
	idx    int
	blocks []Block
	est    int64
	err    error
	st     readStats
}

func (l *loop) run() {
	it := l.it
	defer close(it.done)
	l.readCtx, l.readCancel = context.WithCancel(it.ctx)
	defer l.readCancel()
	l.footers = make(chan footerResult, len(l.d.files))
	l.results = make(chan taskResult, l.opts.Workers)
	l.done = map[int]taskResult{}
	l.sources = make([]*source, len(l.d.files))
	it.s.pending.Store(int64(len(l.d.files)))
	var metaWG sync.WaitGroup
	if l.opts.MetadataFetch == Threaded {
		metaWG.Go(func() {
			for i := range l.d.files {
				r := l.fetchFooter(i)
				l.footers <- r
				if r.err != nil || l.readCtx.Err() != nil {
					return
				}
			}
		})
	}
	defer func() {
		it.cancel()
		for l.running > 0 {
			r := <-l.results
			l.running--
			for _, b := range r.blocks {
				b.Record.Release()
			}
		}
		metaWG.Wait()
		for _, b := range l.queue {
			b.Record.Release()
		}
		for _, r := range l.done {
			for _, b := range r.blocks {
				b.Record.Release()
			}
		}
		for _, s := range l.sources {
			if s != nil {
				s.c.Close()
			}
		}
		it.err = l.failed
		close(it.out)
	}()

	for {
		it.s.iterations.Add(1)
		if l.failed != nil {
			return
		}
		if l.opts.MetadataFetch == Inline && l.resolved < len(l.d.files) && l.next == len(l.tasks) {
			// Inline: fetch the next footer here, synchronously.
			l.addFooter(l.fetchFooter(l.resolved))
			continue
		}
		l.launch()
		if l.finished() {
			return
		}
		var out chan Block
		var head Block
		if len(l.queue) > 0 {
			out, head = it.out, l.queue[0]
		}
		footers := l.footers
		if l.opts.MetadataFetch == Inline {
			footers = nil
		}
		select {
		case r := <-footers:
			l.addFooter(r)
		case r := <-l.results:
			l.running--
			l.taskDone(r)
		case out <- head:
			l.queue = l.queue[1:]
		case n := <-it.freed:
			l.inFlight -= n
		case <-it.ctx.Done():
			l.failed = it.ctx.Err()
			return
		}
	}
}

// finished reports whether everything is read, emitted and handed over.
func (l *loop) finished() bool {
	limitDone := l.limit >= 0 && l.emitted >= l.limit
	allRead := l.resolved == len(l.d.files) && l.next == len(l.tasks)
	return (limitDone || allRead) && l.running == 0 && len(l.queue) == 0
}

func (l *loop) fetchFooter(i int) footerResult {
	src, err := openSource(l.d.fsys, l.d.files[i])
	if err != nil {
		return footerResult{idx: i, err: fmt.Errorf("dataset: open %s: %w", l.d.files[i], err)}
	}
	md := l.d.footers.get(src.cacheKey())
	if md == nil {
		if md, err = readFooter(l.readCtx, src); err != nil {
			src.c.Close()
			return footerResult{idx: i, err: err}
		}
		l.d.footers.put(src.cacheKey(), md)
	}
	f, err := resolve(src, md, l.opts.Columns)
	if err != nil {
		src.c.Close()
		return footerResult{idx: i, err: err}
	}
	return footerResult{idx: i, f: f}
}

func (l *loop) addFooter(r footerResult) {
	l.resolved++
	l.it.s.pending.Add(-1)
	if r.err != nil {
		if l.readCtx.Err() == nil {
			l.failed = r.err
		}
		return
	}
	l.sources[r.idx] = r.f.src
	l.tasks = append(l.tasks, planTasks(r.f, l.opts.TargetBlockBytes)...)
}

// launch starts tasks while workers and budget allow. A task is always
// allowed when nothing is in flight, so progress never stops.
func (l *loop) launch() {
	if l.limit >= 0 && l.emitted >= l.limit {
		return
	}
	for l.running < l.opts.Workers && l.next < len(l.tasks) {
		t := l.tasks[l.next]
		if l.inFlight > 0 && l.inFlight+t.estBytes > l.opts.MemoryBudget {
			if l.blockedAt.IsZero() {
				l.blockedAt = time.Now()
				l.it.s.stalls.Add(1)
			}
			return
		}
		if !l.blockedAt.IsZero() {
			l.it.s.mu.Lock()
			l.it.s.read.TimeBlocked += time.Since(l.blockedAt)
			l.it.s.mu.Unlock()
			l.blockedAt = time.Time{}
		}
		idx := l.next
		l.next++
		l.running++
		l.inFlight += t.estBytes
		l.noteHighWater()
		go l.work(idx, t)
	}
}

func (l *loop) noteHighWater() {
	if l.inFlight > l.it.s.highWater.Load() {
		l.it.s.highWater.Store(l.inFlight)
	}
}

// work runs one read task and its operators on a worker goroutine.
func (l *loop) work(idx int, t *task) {
	ctx := l.readCtx
	start := time.Now()
	var blocks []Block
	st, err := readTask(ctx, t, l.opts.CoalesceGap, l.opts.BatchRows, memory.DefaultAllocator, func(rec arrow.RecordBatch) error {
		for _, op := range l.pre {
			out, err := op.apply(ctx, rec)
			if err != nil {
				return err
			}
			rec = out
		}
		blocks = append(blocks, Block{Record: rec, Meta: BlockMetadata{
			NumRows: rec.NumRows(), SizeBytes: recordSize(rec), Schema: rec.Schema(), Source: t.f.src.name,
		}})
		return nil
	})
	if err != nil {
		for _, b := range blocks {
			b.Record.Release()
		}
		blocks = nil
	}
	s := l.it.s
	s.ranges.Add(st.ranges)
	s.fetched.Add(st.fetchedBytes)
	s.fallbacks.Add(int64(st.fallbacks))
	s.mu.Lock()
	s.read.Tasks++
	s.read.WallTime += time.Since(start)
	for _, b := range blocks {
		s.read.Rows += b.Meta.NumRows
		s.read.Bytes += b.Meta.SizeBytes
	}
	s.mu.Unlock()
	l.results <- taskResult{idx: idx, blocks: blocks, est: t.estBytes, err: err, st: st}
}

// taskDone accounts a finished task and queues its blocks (in task order
// when PreserveOrder is set).
func (l *loop) taskDone(r taskResult) {
	l.inFlight -= r.est
	if r.err != nil {
		if l.readCtx.Err() != nil {
			return // cancelled: by a met Limit, or the whole execution
		}
		n := l.it.s.errored.Add(1)
		if l.opts.MaxErroredBlocks >= 0 && n > int64(l.opts.MaxErroredBlocks) {
			l.failed = r.err
			return
		}
		r.blocks = nil // skipped
	}
	for _, b := range r.blocks {
		l.inFlight += b.Meta.SizeBytes
	}
	l.noteHighWater()
	if !l.opts.PreserveOrder {
		l.enqueue(r.blocks)
		return
	}
	l.done[r.idx] = r
	for {
		r, ok := l.done[l.emitNext]
		if !ok {
			return
		}
		delete(l.done, l.emitNext)
		l.emitNext++
		l.enqueue(r.blocks)
	}
}

// enqueue hands blocks to the consumer queue, applying the Limit.
func (l *loop) enqueue(blocks []Block) {
	for _, b := range blocks {
		if l.limit >= 0 {
			left := l.limit - l.emitted
			if left <= 0 {
				l.inFlight -= b.Meta.SizeBytes
				b.Record.Release()
				continue
			}
			if b.Meta.NumRows > left {
				s := b.Record.NewSlice(0, left)
				b.Record.Release()
				b.Record, b.Meta.NumRows = s, left
			}
		}
		l.emitted += b.Meta.NumRows
		l.queue = append(l.queue, b)
	}
	if l.limit >= 0 && l.emitted >= l.limit {
		// Satisfied: stop reads in flight. Their results are drained and
		// released; what is queued still goes out.
		l.cancelRunning()
	}
}

func (l *loop) cancelRunning() {
	l.next = len(l.tasks)
	l.readCancel()
}
