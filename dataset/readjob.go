package dataset

import (
	"errors"
	"runtime"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// This file is the read of the executor's tasks in two stages, so that the
// link stays busy while the CPU decodes: a task's column chunks are fetched
// (up to Workers tasks on the link ahead of the decodes: see aheadOf), then
// decoded on one of the decode slots (see decodeSlots). Each stage's bytes
// are counted before it starts: a fetch holds its ranges' bytes from its
// launch until its task's decode ends, and a decode holds its reservation
// (see decodeReservation) from its start.

// readJob is one task on its way through the two stages.
type readJob struct {
	idx    int // the task's index in the loop's tasks
	t      *task
	ranges []byteRange // what the fetch reads: the task's coalesced column chunks
	// fetchRes is the bytes the fetch holds: the ranges' total, counted
	// from its launch until the decode ends.
	fetchRes int64
	// decodeRes is the bytes the decode will hold: promised (not counted)
	// until it starts, when it is counted and may grow with the ratio.
	decodeRes int64
	start     time.Time
	fr        *fetched // the fetched bytes, once the fetch succeeded
	st        readStats
	err       error
}

// largestPromise is the largest decode reservation a task fetching, or
// fetched and waiting to decode, promises (other than task except; 0:
// none): bytes not counted yet, which the loop keeps room for. Each is
// taken at the ratio learned so far if that grew past the promise made at
// the fetch's launch. The loop keeps room for the largest promise beside
// every byte held, not for their sum: a decode's reservation turns into its
// blocks, which the consumer lets go, and its fetched bytes go with it, so
// once the decodes before them end the fetched tasks can decode one after
// another, each within the budget. Room for the sum would hold the fetches
// to the few tasks whose whole decodes fit, and the link would idle while
// the CPU decodes.
func (l *loop) largestPromise(except int) int64 {
	var n int64
	for idx, j := range l.pending {
		if idx != except {
			n = max(n, j.decodeRes, l.decodeReservation(j.t, j.fetchRes))
		}
	}
	return n
}

// launch starts what workers and budget allow: decodes of fetched tasks
// first (they turn bytes already held into blocks), then fetches.
func (l *loop) launch() {
	if l.readCtx.Err() != nil {
		l.dropReady() // a met Limit or a cancel: nothing fetched is decoded
	}
	l.startDecodes()
	l.startFetches()
}

// startFetches launches the fetches of the next tasks while the look-ahead
// allows (aheadOf: under a Limit, fewer than Workers tasks in flight at
// all, fetched and decoding included, so a Limit reads no further ahead
// than it did before the fetches ran ahead), until the Limit is
// satisfiable. A fetch starts when its bytes and the largest decode
// reservation it or a fetch before it promises fit in the budget (see
// largestPromise), or when the consumer waits with nothing in flight or
// queued for it (so a block larger than what is left of the budget still
// moves and progress never stops).
func (l *loop) startFetches() {
	for l.aheadOf() < l.opts.Workers && l.next < len(l.tasks) && !l.satisfiable() {
		t := l.tasks[l.next]
		ranges, err := t.chunkRanges(l.opts.CoalesceGap)
		fetchRes := fetchHolds(ranges)
		decodeRes := l.decodeReservation(t, fetchRes)
		idle := l.fetching == 0 && len(l.ready) == 0 && l.running == 0 && len(l.queue) == 0
		if !l.budget.fits(saturatingAdd(fetchRes, max(l.largestPromise(-1), decodeRes))) && !(l.consumerWaits() && idle) {
			l.stalled()
			return
		}
		l.unstalled()
		j := &readJob{idx: l.next, t: t, ranges: ranges, fetchRes: fetchRes, decodeRes: decodeRes, start: time.Now(), err: err}
		l.next++
		l.budget.hold(fetchRes)
		l.pending[j.idx] = j
		l.fetching++
		l.budget.reads.Add(1)
		l.budget.started.Add(1)
		go l.fetchWork(j)
	}
}

// aheadOf is how many tasks count against the fetch look-ahead of Workers:
// the fetches on the link, and the fetched tasks waiting for a decode
// beyond Workers of them. Up to Workers fetched tasks may wait without
// holding the link back: the first wave of fetches lands together and
// waits while the first decode calibrates alone, and counting it held the
// next wave back until decodes began. The budget bounds their bytes; this
// bounds how many files they hold open. Under a Limit every task in flight
// counts, decodes included.
func (l *loop) aheadOf() int {
	if l.limit >= 0 {
		return l.fetching + len(l.ready) + l.running
	}
	return l.fetching + max(len(l.ready)-l.opts.Workers, 0)
}

// fetchWork fetches a job's ranges on a goroutine of its own.
func (l *loop) fetchWork(j *readJob) {
	if j.err == nil {
		j.fr, j.st, j.err = fetchTask(l.readCtx, j.t, j.ranges)
	}
	l.fetches <- j
}

// fetchDone: a fetch ended. A fetched job waits for a decode slot, in task
// order; a failed one ends its task.
func (l *loop) fetchDone(j *readJob) {
	l.fetching--
	l.budget.reads.Add(-1)
	if j.err != nil {
		delete(l.pending, j.idx)
		l.recordRead(j, nil)
		l.finishTask(taskResult{idx: j.idx, file: j.t.file, est: j.t.estBytes, reserved: j.fetchRes, err: j.err, st: j.st})
		return
	}
	at, _ := slices.BinarySearchFunc(l.ready, j.idx, func(r *readJob, idx int) int { return r.idx - idx })
	l.ready = slices.Insert(l.ready, at, j)
}

// startDecodes starts decoding fetched tasks while a decode slot is free:
// there are Workers, or GOMAXPROCS if fewer (see decodeSlots).
// A decode's reservation is recomputed with the ratio learned since its
// fetch started (it never shrinks below the promise), and it starts when
// that fits beside the largest other promise while another decode runs,
// or, with PreserveOrder, while an earlier task has yet to decode (this
// one's blocks stay parked until it has): so the fetched tasks can still
// decode in turn. It also starts when the consumer waits with no decode
// running and nothing queued for it. Until a task has finished,
// estimates are unproven (dictionary-encoded strings decode to many times
// theirs): unless the budget has room for Workers decodes at
// calibrationHeadroom times their reservation, the first decode runs alone
// (the fetches still run ahead of it). A task whose reservation fills the
// budget (decodeReservation's cap) decodes only when nothing else is held
// or the consumer starves, counted for what the budget has left beside the bytes held (its own and
// those fetched ahead before the ratio was known), or its estimate if
// larger: like a task reserving the whole budget when nothing else is
// held, it is the one exception to the budget.
func (l *loop) startDecodes() {
	for l.running < l.decodeSlots() && len(l.ready) > 0 {
		j := l.ready[0]
		need := max(l.decodeReservation(j.t, j.fetchRes), j.decodeRes)
		// With PreserveOrder only the task next in order feeds a waiting
		// consumer: a later one's blocks would stay parked.
		starving := l.consumerWaits() && l.running == 0 && len(l.queue) == 0 && (!l.opts.PreserveOrder || j.idx == l.emitNext)
		whole := saturatingAdd(need, j.fetchRes) >= l.opts.MemoryBudget
		used, _ := l.budget.usage()
		alone := l.running == 0 && used == j.fetchRes && len(l.pending) == 1
		if whole && (starving || alone) {
			need = max(l.budget.room(), j.t.estBytes-j.fetchRes, 0)
		}
		calibrating := !l.calibrated && l.running > 0 && !l.budget.fits(saturatingMul(int64(l.opts.Workers)*calibrationHeadroom, need))
		room := need // alone and first in line, the promises guarantee it
		if l.running > 0 || l.opts.PreserveOrder && j.idx > l.emitNext {
			room = saturatingAdd(need, l.largestPromise(j.idx))
		}
		fits := alone || !whole && l.budget.fits(room)
		if calibrating || !fits && !starving {
			l.stalled()
			return
		}
		l.ready[0] = nil // the backing array must not keep it alive
		l.ready = l.ready[1:]
		delete(l.pending, j.idx)
		j.decodeRes = need
		l.budget.hold(need)
		l.running++
		l.budget.reads.Add(1)
		l.budget.started.Add(1)
		go l.decodeWork(j)
	}
}

// decodeSlots is how many tasks may decode at once: Workers, but no more
// than GOMAXPROCS. A decode spreads its columns over the CPUs
// (columnRecords), so decodes past the CPUs add no speed, only the memory
// each holds; and the bytes they would reserve are what lets the fetches
// run ahead of them.
func (l *loop) decodeSlots() int { return min(l.opts.Workers, runtime.GOMAXPROCS(0)) }

// dropReady ends the fetched tasks that wait for a decode: the reads were
// cancelled (a met Limit, or the execution).
func (l *loop) dropReady() {
	for _, j := range l.ready {
		delete(l.pending, j.idx)
		l.finishTask(taskResult{idx: j.idx, file: j.t.file, est: j.t.estBytes, reserved: j.fetchRes, err: l.readCtx.Err()})
	}
	l.ready = nil
}

// decodeReservation is what a task's decode is counted for: its estimate
// scaled by the most decoded bytes per estimated byte seen so far, times
// decodePeak (while decoding, a task holds the column readers' page
// buffers and dictionary caches beside the arrays it builds). With the
// fetched bytes (fetchRes) it makes the task's reservation, which becomes
// the size of its blocks when it ends. A reservation of the whole budget
// or more is cut to the budget (or the estimate, if larger).
func (l *loop) decodeReservation(t *task, fetchRes int64) int64 {
	r := float64(t.estBytes)*l.ratio*decodePeak + float64(fetchRes)
	if r >= float64(l.opts.MemoryBudget) {
		return max(max(l.opts.MemoryBudget, t.estBytes)-fetchRes, 0)
	}
	return int64(r) - fetchRes
}

// stalled notes that a read could not start for lack of budget.
func (l *loop) stalled() {
	if l.blockedAt.IsZero() {
		l.blockedAt = time.Now()
		l.it.s.stalls.Add(1)
	}
}

// unstalled ends a stall: its time counts as blocked.
func (l *loop) unstalled() {
	if !l.blockedAt.IsZero() {
		l.it.s.mu.Lock()
		l.it.s.read.TimeBlocked += time.Since(l.blockedAt)
		l.it.s.mu.Unlock()
		l.blockedAt = time.Time{}
	}
}

// decodeWork decodes a fetched job and runs the operators on its records,
// on a worker goroutine.
func (l *loop) decodeWork(j *readJob) {
	ctx := l.readCtx
	t := j.t
	var blocks []Block
	err := decode(ctx, t, j.fr, l.opts.BatchRows, memory.DefaultAllocator, func(rec arrow.RecordBatch) error {
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
	j.st.fallbacks = j.fr.fallbacks
	j.fr.release()
	l.recordRead(j, blocks)
	l.results <- taskResult{idx: j.idx, file: t.file, blocks: blocks, est: t.estBytes, reserved: j.fetchRes + j.decodeRes, err: err, st: j.st}
}

// recordRead adds a finished read to the execution's counters.
func (l *loop) recordRead(j *readJob, blocks []Block) {
	s := l.it.s
	s.ranges.Add(j.st.ranges)
	s.fetched.Add(j.st.fetchedBytes)
	s.fallbacks.Add(int64(j.st.fallbacks))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read.Tasks++
	s.read.WallTime += time.Since(j.start)
	for _, b := range blocks {
		s.read.Rows += b.Meta.NumRows
		s.read.Bytes += b.Meta.SizeBytes
	}
}

// taskDone: a decode finished; its slot is free.
func (l *loop) taskDone(r taskResult) {
	l.running--
	l.budget.reads.Add(-1)
	l.finishTask(r)
}

// finishTask ends a task (decoded, or failed or dropped before): it closes
// its file if it was the last, turns its reservation into its blocks,
// accounts it and queues its blocks (in task order when PreserveOrder is
// set).
func (l *loop) finishTask(r taskResult) {
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
			l.droppedCancelled() // by a met Limit, or the whole execution
			return
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
