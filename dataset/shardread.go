package dataset

// This file reads a shard: its units in order (a few ahead, without the
// executor), cut into batches deterministically so that a Position can
// resume exactly, fetching nothing of the batches it skips.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/sync/semaphore"
)

// ErrPositionMismatch is wrapped by the error of ShardBatches given a
// Position made with another plan, seed, epoch, rank, world, mode or batch
// settings, or one past the end of its shard: resuming from it would hand
// out wrong rows.
var ErrPositionMismatch = errors.New("dataset: position does not match the shard")

// Position is where one rank's stream stands: marshal it (JSON) with a
// checkpoint and give it back as ShardBatchOptions.Resume to go on with
// exactly the batches the uninterrupted run would have yielded next. Every
// field but Batches pins what the stream was made with.
type Position struct {
	Plan                   string `json:"plan"` // Plan.Fingerprint
	Seed                   uint64 `json:"seed"`
	Epoch                  int    `json:"epoch"`
	Rank                   int    `json:"rank"`
	World                  int    `json:"world"`
	Equal                  bool   `json:"equal"`
	ShuffleUnits           bool   `json:"shuffle_units"`
	BatchSize              int64  `json:"batch_size"`
	DropLast               bool   `json:"drop_last"`
	LocalShuffleBufferSize int64  `json:"local_shuffle_buffer_size,omitempty"`
	// Batches is how many batches of the epoch were delivered.
	Batches int64 `json:"batches"`
}

// Fingerprint names the plan's content (projection, files with their
// versions, units): two plans with the same fingerprint shard alike. A
// Position records it.
func (p *Plan) Fingerprint() string {
	type file struct {
		Name                   string
		Size, Rows, Generation int64
	}
	c := struct {
		Columns []string
		Files   []file
		Units   []Unit
	}{Columns: p.Columns, Units: p.Units}
	for _, f := range p.Files {
		c.Files = append(c.Files, file{Name: f.Name, Size: f.Size, Rows: f.Rows, Generation: f.Generation})
	}
	b, _ := json.Marshal(c) // plain data: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ShardIterator streams one rank's batches of one epoch. It is not safe for
// concurrent use; Close it when done.
type ShardIterator struct {
	bi    *BatchIterator
	pos   Position
	shard *Shard
}

// Next advances to the next batch, releasing the previous one.
func (s *ShardIterator) Next() bool {
	if !s.bi.Next() {
		return false
	}
	s.pos.Batches++
	return true
}

// Batch returns the current batch; its Index counts from 0 at the start of
// this iterator (Position().Batches-1 is its index in the epoch).
func (s *ShardIterator) Batch() Batch { return s.bi.Batch() }

// Err returns the error that ended the iteration, if any.
func (s *ShardIterator) Err() error { return s.bi.Err() }

// Close stops the reads and waits for them. Idempotent.
func (s *ShardIterator) Close() error { return s.bi.Close() }

// Position is the stream's position after the batches Next delivered:
// resuming from it yields the batch after the current one.
func (s *ShardIterator) Position() Position { return s.pos }

// Shard is the part of the epoch this iterator reads.
func (s *ShardIterator) Shard() *Shard { return s.shard }

// ShardBatches streams rank sh.Rank's batches of epoch sh.Epoch of d's
// plan (see Plan.Shard), reading the shard's units in order, up to
// ReadOptions.Workers of them ahead, without the executor: it holds at
// most Workers+1 units' blocks, and starts a unit's read only when its
// estimated bytes (projected, uncompressed) fit the MemoryBudget with the
// units not yet consumed (one unit always may), plus one shuffle window
// and the batches in flight. A unit that fails ends the stream with its
// error (MaxErroredBlocks does not apply: skipping rows would break equal
// counts). Batches are cut deterministically:
//   - the shard's rows are taken in unit order and split into windows of
//     W rows, W = LocalShuffleBufferSize rounded up to a multiple of
//     BatchSize (W = BatchSize without a local shuffle);
//   - with a local shuffle each window is permuted by a PCG seeded from
//     (Seed, Epoch, Rank, window), then cut into batches; the last window
//     may be short, and DropLast drops its short last batch.
//
// So the batches are a function of the plan, sh and the batch settings
// alone: the same on every run, and with Equal the same count on every
// rank. BatchOptions.Seed is not used (sh.Seed is); Collate,
// CollateWorkers, PrefetchBatches and PreserveOrder work as in Batches
// (without PreserveOrder, collated batches may come out of order).
//
// With resume, the stream starts at batch resume.Batches: it reads from
// the start of that batch's window (from the batch itself without a local
// shuffle), so the units before it are neither fetched nor decoded. A
// resume made with another plan, seed, epoch, rank, world, mode or batch
// settings fails with an error wrapping ErrPositionMismatch. d must have
// no operators (Map, Filter, Limit would make ranks' counts differ): an
// error wrapping fs.ErrInvalid. Cancelling ctx ends the stream with an
// error wrapping ctx's.
func (d *Dataset) ShardBatches(ctx context.Context, sh ShardOptions, resume *Position, opts *BatchOptions) (*ShardIterator, error) {
	if len(d.ops) > 0 {
		return nil, fmt.Errorf("dataset: ShardBatches on a dataset with operators (use Collate for per-batch work): %w", fs.ErrInvalid)
	}
	p, err := d.Plan()
	if err != nil {
		return nil, err
	}
	s, err := p.Shard(sh)
	if err != nil {
		return nil, err
	}
	o := opts.normalize()
	pos := Position{Plan: p.Fingerprint(), Seed: sh.Seed, Epoch: sh.Epoch, Rank: sh.Rank, World: sh.World, Equal: sh.Equal,
		ShuffleUnits: sh.ShuffleUnits, BatchSize: o.BatchSize, DropLast: o.DropLast, LocalShuffleBufferSize: max(o.LocalShuffleBufferSize, 0)}
	cut, err := newBatchCut(s, &o, pos, resume)
	if err != nil {
		return nil, err
	}
	if resume != nil {
		pos.Batches = resume.Batches
	}
	units := sliceUnits(s.Units, cut.startRow, s.Rows-cut.startRow)
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	it := newUnitIterator(ctx, d, units)
	// The unit reads reserve their estimates on the unitIterator's own
	// semaphore; this budget counts what the batches hold, for Stats.
	bi := newBatchIterator(parent, ctx, cancel, it, newMemBudget(d.opts.MemoryBudget), opts, cut.form)
	return &ShardIterator{bi: bi, pos: pos, shard: s}, nil
}

// batchCut is how a shard's rows become batches: windows of window rows
// (a multiple of the batch size), the first of them window number first
// starting at row startRow of the shard, whose first skip batches were
// delivered before a resume.
type batchCut struct {
	window, startRow, skip, first int64
	shuffle                       bool
	seed                          uint64 // of the rank's epoch; windows mix in their number
}

// newBatchCut checks resume against pos (what this stream is) and places
// the start of the stream.
func newBatchCut(s *Shard, o *BatchOptions, pos Position, resume *Position) (*batchCut, error) {
	c := &batchCut{window: o.BatchSize, shuffle: o.LocalShuffleBufferSize > 0,
		seed: mix(s.Options.Seed, seedLocal, uint64(s.Options.Epoch), uint64(s.Options.Rank))}
	if c.shuffle {
		n := (o.LocalShuffleBufferSize-1)/o.BatchSize + 1
		if n > math.MaxInt64/o.BatchSize {
			return nil, fmt.Errorf("dataset: LocalShuffleBufferSize %d: too large: %w", o.LocalShuffleBufferSize, fs.ErrInvalid)
		}
		c.window = n * o.BatchSize
	}
	if resume == nil {
		return c, nil
	}
	want := pos
	want.Batches = resume.Batches
	if *resume != want {
		return nil, fmt.Errorf("dataset: resume from %+v for the stream %+v: %w", *resume, want, ErrPositionMismatch)
	}
	total := s.Rows / o.BatchSize
	if s.Rows%o.BatchSize != 0 && !o.DropLast {
		total++
	}
	k := resume.Batches
	if k < 0 || k > total {
		return nil, fmt.Errorf("dataset: resume at batch %d of a shard of %d batches: %w", k, total, ErrPositionMismatch)
	}
	if k == total {
		c.startRow = s.Rows // nothing left
		return c, nil
	}
	// k < total, so batch k starts at row k*BatchSize < Rows: no overflow.
	c.first = k * o.BatchSize / c.window
	c.startRow = c.first * c.window
	c.skip = k - c.startRow/o.BatchSize
	return c, nil
}

// form cuts the blocks of it into batches by windows and sends them.
func (c *batchCut) form(ctx context.Context, it BlockIterator, o *BatchOptions, sink *batchSink) {
	var held rowCarry
	defer func() {
		held.release()
		sink.holding(0)
	}()
	idx, win, skip := 0, c.first, c.skip
	// window cuts n rows off held and sends their batches, each in buffers
	// of its own (a slice of the window would keep all of it alive): with
	// shuffle, each batch takes its rows of the window's permutation.
	window := func(n int64) bool {
		rec, size, err := held.cut(n)
		if err != nil {
			sink.fail(err)
			return false
		}
		var perm []int
		if c.shuffle {
			perm = permutation(int(n), mix(c.seed, uint64(win)), seedLocal)
		}
		win++
		sink.holding(held.bytes + size)
		defer func() {
			rec.Release()
			sink.holding(held.bytes)
		}()
		for off := int64(0); off < n; off += o.BatchSize {
			rows := min(o.BatchSize, n-off)
			if rows < o.BatchSize && o.DropLast {
				break
			}
			if skip > 0 {
				skip--
				continue
			}
			b, bsize, err := windowBatch(ctx, rec, perm, off, off+rows)
			if err != nil {
				sink.fail(err)
				return false
			}
			sink.holding(held.bytes + size + bsize)
			if !sink.send(batchResult{b: Batch{Record: b, Index: idx}, size: bsize}) {
				return false
			}
			idx++
		}
		return true
	}
	for sink.next(it) {
		held.add(sink.take(it))
		for held.rows >= c.window {
			if !window(c.window) {
				return
			}
		}
	}
	if err := it.Err(); err != nil {
		sink.fail(err)
		return
	}
	if held.rows > 0 {
		window(held.rows)
	}
}

// windowBatch is rows [from, to) of a window, or with a permutation the
// rows perm[from:to], in buffers of their own, and their size.
func windowBatch(ctx context.Context, win arrow.RecordBatch, perm []int, from, to int64) (arrow.RecordBatch, int64, error) {
	if perm == nil {
		return copyRows(win, from, to)
	}
	b, err := take(ctx, win, perm[from:to])
	if err != nil {
		return nil, 0, err
	}
	return b, recordSize(b), nil
}

// unitIterator is the BlockIterator of a shard: its units read in order,
// up to Workers of them ahead, each on its own goroutine, under the
// MemoryBudget: a unit reserves its estimated bytes before its read starts
// and frees them when the consumer moves past its blocks.
type unitIterator struct {
	ctx     context.Context
	cancel  context.CancelFunc
	futures chan unitFuture // in unit order
	budget  *semaphore.Weighted
	held    int64 // reserved by the unit being consumed
	wg      sync.WaitGroup
	blocks  []Block // of the unit being consumed
	cur     Block
	err     error
	ended   bool
}

// unitFuture is where one unit's read delivers, and what it reserved.
type unitFuture struct {
	ch       chan unitResult
	reserved int64
}

type unitResult struct {
	blocks []Block
	err    error
}

func newUnitIterator(ctx context.Context, d *Dataset, units []Unit) *unitIterator {
	ctx, cancel := context.WithCancel(ctx)
	u := &unitIterator{ctx: ctx, cancel: cancel, futures: make(chan unitFuture, d.opts.Workers), budget: semaphore.NewWeighted(d.opts.MemoryBudget)}
	u.wg.Go(func() {
		defer close(u.futures)
		leaves := map[string][]int{}
		for _, unit := range units {
			fut := unitFuture{ch: make(chan unitResult, 1), reserved: min(d.unitBytes(unit, leaves), d.opts.MemoryBudget)}
			if u.budget.Acquire(ctx, fut.reserved) != nil {
				return
			}
			select {
			case u.futures <- fut:
			case <-ctx.Done():
				u.budget.Release(fut.reserved)
				return
			}
			u.wg.Go(func() {
				var r unitResult
				_, r.err = d.readUnit(ctx, unit, func(rec arrow.RecordBatch) error {
					r.blocks = append(r.blocks, newBlock(rec, unit.File))
					return nil
				})
				if r.err != nil {
					releaseBlocks(r.blocks)
					r.blocks = nil
				}
				fut.ch <- r
			})
		}
	})
	return u
}

// unitBytes estimates what reading unit holds: the uncompressed bytes of
// the projected column chunks of its row groups (a slice of a row group
// holds the whole group's buffers). leaves caches files' projections.
func (d *Dataset) unitBytes(unit Unit, leaves map[string][]int) int64 {
	i, ok := slices.BinarySearch(d.files, unit.File)
	if !ok || d.read[i].md == nil || checkUnit(unit, d.read[i].md) != nil {
		return 0 // ReadUnit reports it
	}
	md := d.read[i].md
	l, ok := leaves[unit.File]
	if !ok {
		if fc, err := projectFile(unit.File, md, d.opts.Columns); err == nil {
			l = fc.leaves
		}
		leaves[unit.File] = l
	}
	var n int64
	for rg := unit.FirstRowGroup; rg < unit.FirstRowGroup+unit.NumRowGroups; rg++ {
		n = saturatingAdd(n, rowGroupBytes(md, rg, l))
	}
	return max(n, 0)
}

// Next advances to the next block, releasing the previous one.
func (u *unitIterator) Next() bool {
	if u.cur.Record != nil {
		u.cur.Record.Release()
		u.cur = Block{}
	}
	for !u.ended && len(u.blocks) == 0 {
		u.budget.Release(u.held)
		u.held = 0
		fut, ok := <-u.futures
		if !ok {
			u.ended = true
			if err := u.ctx.Err(); err != nil {
				u.err = fmt.Errorf("dataset: shard: %w", err)
			}
			return false
		}
		u.held = fut.reserved
		r := <-fut.ch
		if r.err != nil {
			u.err, u.ended = r.err, true
			return false
		}
		u.blocks = r.blocks
	}
	if u.ended {
		return false
	}
	u.cur, u.blocks[0], u.blocks = u.blocks[0], Block{}, u.blocks[1:]
	return true
}

// Block returns the current block.
func (u *unitIterator) Block() Block { return u.cur }

// Err returns the error that ended the stream, if any.
func (u *unitIterator) Err() error { return u.err }

// Close stops the reads, releases what they produced and waits for them.
func (u *unitIterator) Close() error {
	if u.cur.Record != nil {
		u.cur.Record.Release()
		u.cur = Block{}
	}
	releaseBlocks(u.blocks)
	u.blocks = nil
	u.ended = true
	u.cancel()
	for fut := range u.futures {
		releaseBlocks((<-fut.ch).blocks)
	}
	u.wg.Wait()
	return nil
}
