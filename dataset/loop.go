package dataset

import (
	"context"
	"errors"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// loop is the scheduling loop of one execution: one goroutine, one handler
// per event. It never does I/O itself (except footers in Inline mode, by
// design): reads run on workers, footers behind the metadataFetcher.
type loop struct {
	it    *Iterator
	d     *Dataset
	opts  ReadOptions
	pre   []*operator
	limit int64 // -1: none

	readCtx    context.Context // reads and footers; cancelled once a Limit is met
	readCancel context.CancelFunc
	fetcher    metadataFetcher
	requested  int // files whose footer has been requested
	resolved   int // files whose footer is in
	results    chan taskResult
	sources    []*source // open files, closed once their last task is done
	tasksLeft  []int     // per file: tasks not yet done
	tasks      []*task
	next       int // next task to launch
	running    int
	budget     *memBudget
	hungry     bool               // the consumer waits and nothing is queued for it
	ratio      float64            // most decoded bytes per estimated byte seen so far
	calibrated bool               // a task has read its blocks: ratio is measured
	done       map[int]taskResult // finished tasks awaiting order
	parkedRows int64              // rows of the blocks in done
	emitNext   int                // PreserveOrder: next task index to emit
	queue      []Block
	emitted    int64 // rows queued to the consumer
	failed     error
	blockedAt  time.Time
}

type taskResult struct {
	idx      int
	file     int
	blocks   []Block
	est      int64 // the task's estimate
	reserved int64 // what the loop reserved for it
	err      error
	st       readStats
}

// newLoop sets up the scheduling loop of the execution behind it; run
// starts it.
func newLoop(it *Iterator, pre []*operator, limit int64) *loop {
	d := it.d
	l := &loop{
		it: it, d: d, opts: d.opts, pre: pre, limit: limit, budget: it.budget, ratio: 1,
		results:   make(chan taskResult, d.opts.Workers),
		done:      map[int]taskResult{},
		sources:   make([]*source, len(d.files)),
		tasksLeft: make([]int, len(d.files)),
	}
	l.readCtx, l.readCancel = context.WithCancel(it.ctx)
	l.fetcher = newMetadataFetcher(l.readCtx, d.opts.MetadataFetch, d.resolveFooter)
	it.s.pending.Store(int64(len(d.files)))
	return l
}

// run is the loop: plan, launch, then wait for one event and handle it,
// until everything is handed over or the execution fails.
func (l *loop) run() {
	defer close(l.it.done)
	defer l.readCancel()
	defer l.shutdown()
	for {
		l.it.s.iterations.Add(1)
		if l.failed != nil {
			return
		}
		if l.requestFooters() {
			continue
		}
		l.launch()
		if l.finished() {
			return
		}
		if !l.wait() {
			return
		}
	}
}

// wait waits for one event and hands it to its handler; false when the
// execution's context ended.
func (l *loop) wait() bool {
	var out chan Block
	var head Block
	if len(l.queue) > 0 {
		out, head = l.it.out, l.queue[0]
	}
	select {
	case r := <-l.fetcher.results():
		l.addFooter(r)
	case r := <-l.results:
		l.taskDone(r)
	case out <- head:
		l.handedOver()
	case <-l.budget.wake:
		// Bytes were let go: launch looks again.
	case <-l.it.hungry:
		l.hungry = true
	case <-l.it.ctx.Done():
		l.cancelled()
		return false
	}
	return true
}

// handedOver: the consumer took the head of the queue.
func (l *loop) handedOver() {
	l.queue[0] = Block{} // the backing array must not keep it alive
	l.queue = l.queue[1:]
	l.hungry = false
	// A hungry signal the consumer sent before it received is stale now.
	select {
	case <-l.it.hungry:
	default:
	}
}

// cancelled: the execution's context ended; the loop stops with its error.
func (l *loop) cancelled() { l.failed = l.it.ctx.Err() }

// shutdown cancels what runs, drains and releases everything held, and
// hands the outcome to the iterator.
func (l *loop) shutdown() {
	it := l.it
	it.cancel()
	for l.running > 0 {
		r := <-l.results
		l.running--
		l.budget.reads.Add(-1)
		l.budget.let(r.reserved)
		releaseBlocks(r.blocks)
	}
	l.fetcher.close()
	l.releaseCounted(l.queue)
	for _, r := range l.done {
		l.releaseCounted(r.blocks)
	}
	for _, s := range l.sources {
		if s != nil {
			s.c.Close()
		}
	}
	it.err = l.failed
	close(it.out)
}

func releaseBlocks(bs []Block) {
	for _, b := range bs {
		b.Record.Release()
	}
}

// releaseCounted releases blocks the budget counts, and uncounts them.
func (l *loop) releaseCounted(bs []Block) {
	for _, b := range bs {
		b.Record.Release()
		l.budget.let(b.Meta.SizeBytes)
	}
}

// satisfiable reports whether the rows already produced (queued, handed
// over, or parked for order) meet the Limit: then no further footer or
// task is needed. With PreserveOrder the parked rows belong to launched
// tasks, and every task before them is launched too, so the tasks launched
// so far are enough.
func (l *loop) satisfiable() bool {
	return l.limit >= 0 && l.emitted+l.parkedRows >= l.limit
}

// requestFooters asks the fetcher for the next footers the look-ahead
// allows; it reports whether it resolved one inline (the loop then plans
// again before waiting).
func (l *loop) requestFooters() bool {
	for l.requested < len(l.d.files) && !l.satisfiable() {
		if l.requested-l.resolved+l.filesUnlaunched() >= l.fetcher.lookahead() {
			return false
		}
		l.requested++
		if r, ok := l.fetcher.request(l.requested - 1); ok {
			l.addFooter(r)
			return true
		}
	}
	return false
}

// filesUnlaunched is how many resolved files still have a task to launch.
func (l *loop) filesUnlaunched() int {
	if l.next >= len(l.tasks) {
		return 0
	}
	return l.tasks[len(l.tasks)-1].file - l.tasks[l.next].file + 1
}

// finished reports whether everything is read, emitted and handed over.
func (l *loop) finished() bool {
	limitDone := l.limit >= 0 && l.emitted >= l.limit
	allRead := l.resolved == len(l.d.files) && l.next == len(l.tasks)
	return (limitDone || allRead) && l.running == 0 && len(l.queue) == 0
}

// addFooter: a file's footer is resolved; it plans the file's tasks. A file that cannot be
// read counts as one errored block (MaxErroredBlocks); its rows are
// skipped.
func (l *loop) addFooter(r footerResult) {
	l.resolved++
	l.it.s.pending.Add(-1)
	if r.err != nil {
		if l.readCtx.Err() == nil {
			l.blockFailed(r.err)
		}
		return
	}
	l.sources[r.idx] = r.f.src
	planned := planTasks(r.f, r.idx, l.opts.TargetBlockBytes)
	l.tasksLeft[r.idx] = len(planned)
	l.tasks = append(l.tasks, planned...)
	l.closeIfDone(r.idx)
}

// closeIfDone closes file i once every task of it is done.
func (l *loop) closeIfDone(i int) {
	if l.tasksLeft[i] == 0 && l.sources[i] != nil {
		l.sources[i].c.Close()
		l.sources[i] = nil
	}
}

// blockFailed counts a failed block (a read task or a whole file) and
// fails the execution past MaxErroredBlocks. A panic in user code always
// fails it.
func (l *loop) blockFailed(err error) {
	s := l.it.s
	n := s.errored.Add(1)
	s.mu.Lock()
	s.errors = append(s.errors, err)
	s.mu.Unlock()
	var pe *PanicError
	if errors.As(err, &pe) || (l.opts.MaxErroredBlocks >= 0 && n > int64(l.opts.MaxErroredBlocks)) {
		l.failed = err
	}
}

// launch starts tasks while workers and budget allow, until the Limit is
// satisfiable. A task starts when its reservation fits in the budget, or
// when the consumer waits with nothing running or queued for it (so a
// block larger than what is left of the budget still moves and progress
// never stops). Until a task has finished, estimates are unproven
// (dictionary-encoded strings decode to many times theirs): unless the
// budget has room for Workers tasks at calibrationHeadroom times their
// reservation, the first task runs alone.
func (l *loop) launch() {
	for l.running < l.opts.Workers && l.next < len(l.tasks) && !l.satisfiable() {
		t := l.tasks[l.next]
		reserve := l.reservation(t)
		starving := l.hungry && l.running == 0 && len(l.queue) == 0
		calibrating := !l.calibrated && l.running > 0 && !l.budget.fits(saturatingMul(int64(l.opts.Workers)*calibrationHeadroom, reserve))
		if calibrating || (!l.budget.fits(reserve) && !starving) {
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
		l.budget.hold(reserve)
		l.budget.reads.Add(1)
		l.budget.started.Add(1)
		go l.work(idx, t, reserve)
	}
}

// reservation is what a task is counted for while it runs: its estimate
// scaled by the most decoded bytes per estimated byte seen so far, times
// decodePeak (while decoding, a task holds the column readers' page
// buffers and dictionary caches beside the arrays it builds), and the
// compressed bytes it fetches and decodes from. When the task ends the
// reservation becomes the size of its blocks.
func (l *loop) reservation(t *task) int64 {
	r := float64(t.estBytes)*l.ratio*decodePeak + float64(t.fetchBytes)
	if r >= float64(l.opts.MemoryBudget) {
		return max(l.opts.MemoryBudget, t.estBytes)
	}
	return int64(r)
}

// learn updates the ratio of decoded to estimated bytes from a finished
// task.
func (l *loop) learn(r taskResult) {
	if r.err != nil || r.est <= 0 {
		return
	}
	var real int64
	for _, b := range r.blocks {
		real += b.Meta.SizeBytes
	}
	l.ratio = max(l.ratio, float64(real)/float64(r.est))
}

// work runs one read task and its operators on a worker goroutine.
func (l *loop) work(idx int, t *task, reserved int64) {
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
		blocks = append(blocks, newBlock(rec, t.f.src.name))
		return nil
	})
	if err != nil {
		releaseBlocks(blocks)
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
	l.results <- taskResult{idx: idx, file: t.file, blocks: blocks, est: t.estBytes, reserved: reserved, err: err, st: st}
}

// taskDone: a read task finished. It frees its worker, closes its file if
// it was the last, accounts it and queues its blocks (in task order when
// PreserveOrder is set).
func (l *loop) taskDone(r taskResult) {
	l.running--
	l.budget.reads.Add(-1)
	l.tasksLeft[r.file]--
	l.closeIfDone(r.file)
	var real int64
	for _, b := range r.blocks {
		real += b.Meta.SizeBytes
	}
	l.budget.adjust(r.reserved, real) // the reservation becomes the blocks
	l.learn(r)
	if r.err != nil {
		var pe *PanicError
		if l.readCtx.Err() != nil && !errors.As(r.err, &pe) {
			return // cancelled: by a met Limit, or the whole execution
		}
		l.blockFailed(r.err)
		if l.failed != nil {
			return
		}
		r.blocks = nil // skipped
	}
	if r.err == nil {
		l.calibrated = true
	}
	if !l.opts.PreserveOrder {
		l.enqueue(r.blocks)
		return
	}
	l.done[r.idx] = r
	l.parkedRows += blockRows(r.blocks)
	for {
		r, ok := l.done[l.emitNext]
		if !ok {
			return
		}
		delete(l.done, l.emitNext)
		l.parkedRows -= blockRows(r.blocks)
		l.emitNext++
		l.enqueue(r.blocks)
	}
}

func blockRows(bs []Block) int64 {
	var n int64
	for _, b := range bs {
		n += b.Meta.NumRows
	}
	return n
}

// enqueue hands blocks to the consumer queue, applying the Limit.
func (l *loop) enqueue(blocks []Block) {
	for _, b := range blocks {
		if l.limit >= 0 {
			left := l.limit - l.emitted
			if left <= 0 {
				l.budget.let(b.Meta.SizeBytes)
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
		l.next = len(l.tasks)
		l.readCancel()
	}
}
