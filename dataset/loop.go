package dataset

import (
	"context"
	"errors"
	"time"
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
	requested  int             // files whose footer has been requested
	resolved   int             // files whose footer is in
	results    chan taskResult // decodes that ended
	fetches    chan *readJob   // fetches that ended
	sources    []*source       // open files, closed once their last task is done
	tasksLeft  []int           // per file: tasks not yet done
	tasks      []*task
	next       int              // next task to launch
	fetching   int              // fetches in flight
	ready      []*readJob       // fetched tasks waiting for a decode slot, in task order
	pending    map[int]*readJob // tasks fetching or ready, by index: their decodes are promised, not counted
	running    int              // decodes in flight
	budget     *memBudget
	handed     int64              // blocks handed over to the consumer
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
		fetches:   make(chan *readJob, d.opts.Workers),
		done:      map[int]taskResult{},
		pending:   map[int]*readJob{},
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
	case j := <-l.fetches:
		l.fetchDone(j)
	case r := <-l.results:
		l.taskDone(r)
	case out <- head:
		l.handedOver()
	case <-l.budget.wake:
		// Bytes were let go: launch looks again.
	case <-l.it.hungry:
		// The consumer waits: launch looks again (see consumerWaits).
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
	l.handed++
}

// consumerWaits reports whether the consumer is blocked waiting for a
// block: it said so after receiving every block handed over so far. (A
// signal it sent before the last handover is stale, and is told apart by
// the count, not by draining the signal, which could eat a fresh one sent
// right after the handover and leave the loop waiting for a consumer that
// waits for it.)
func (l *loop) consumerWaits() bool { return l.it.waitingAt.Load() == l.handed }

// cancelled: the execution's context ended; the loop stops with its error.
func (l *loop) cancelled() { l.failed = l.it.ctx.Err() }

// shutdown cancels what runs, drains and releases everything held, and
// hands the outcome to the iterator.
func (l *loop) shutdown() {
	it := l.it
	it.cancel()
	for l.running > 0 || l.fetching > 0 {
		select {
		case j := <-l.fetches:
			l.fetching--
			l.budget.reads.Add(-1)
			l.budget.let(j.fetchRes)
		case r := <-l.results:
			l.running--
			l.budget.reads.Add(-1)
			l.budget.let(r.reserved)
			releaseBlocks(r.blocks)
		}
	}
	for _, j := range l.ready {
		l.budget.let(j.fetchRes)
	}
	l.ready = nil
	clear(l.pending)
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
	return (limitDone || allRead) && l.running == 0 && l.fetching == 0 && len(l.ready) == 0 && len(l.queue) == 0
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
		} else {
			l.droppedCancelled()
		}
		return
	}
	l.sources[r.idx] = r.f.src
	planned := planTasks(r.f, r.idx, l.opts.TargetBlockBytes)
	l.tasksLeft[r.idx] = len(planned)
	l.tasks = append(l.tasks, planned...)
	l.closeIfDone(r.idx)
}

// droppedCancelled: a footer or task failed after the reads were
// cancelled, and is dropped. A met Limit needs none of them; a cancelled
// execution fails here with its context's error, not later in wait: once
// the dropped work was the last, the loop finds everything finished
// before it waits again, and ended with no error and rows missing.
func (l *loop) droppedCancelled() {
	if err := l.it.ctx.Err(); err != nil && l.failed == nil {
		l.failed = err
	}
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
