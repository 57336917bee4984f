package dataset

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"golang.org/x/sync/errgroup"

	"github.com/zonalread/zonalread/gcsfs"
)

// task is one read of the executor or of ReadUnit: a Unit (some row groups
// of one file, and a row range within them) with the file's footer.
type task struct {
	f         *footer
	file      int // index of the file in the dataset
	rowGroups []int
	skip      int64 // rows of the row groups before the task's rows
	rows      int64 // rows the task emits
	groupRows int64 // rows of its row groups: what decoding yields
	estBytes  int64 // uncompressed bytes of the projected columns
	// fetchBytes is the compressed bytes of the projected column chunks:
	// held, with the pages decompressed from them, while the task decodes
	fetchBytes int64
}

// newTask is the task reading unit u of file (index file) whose resolved
// footer is f. u is trusted: it comes from fileUnits or checkUnit.
func newTask(f *footer, file int, u Unit) *task {
	t := &task{f: f, file: file, skip: u.RowOffset, rows: u.Rows}
	for rg := u.FirstRowGroup; rg < u.FirstRowGroup+u.NumRowGroups; rg++ {
		t.rowGroups = append(t.rowGroups, rg)
		t.groupRows += f.md.RowGroup(rg).NumRows()
		t.estBytes = saturatingAdd(t.estBytes, rowGroupBytes(f.md, rg, f.leaves))
		t.fetchBytes = saturatingAdd(t.fetchBytes, rowGroupCompressedBytes(f.md, rg, f.leaves))
	}
	return t
}

// rowGroupCompressedBytes is the compressed size of row group rg's
// projected column chunks.
func rowGroupCompressedBytes(md *metadata.FileMetaData, rg int, leaves []int) int64 {
	meta := md.RowGroup(rg)
	var n int64
	for _, leaf := range leaves {
		if cc, err := meta.ColumnChunk(leaf); err == nil {
			n = saturatingAdd(n, max(cc.TotalCompressedSize(), 0))
		}
	}
	return n
}

// planTasks makes the executor's tasks of one file: one per unit of the
// file's read plan.
func planTasks(f *footer, file int, target int64) []*task {
	var tasks []*task
	for _, u := range fileUnits(f.src.name, f.src.identity(), f.md, f.leaves, target) {
		tasks = append(tasks, newTask(f, file, u))
	}
	return tasks
}

// byteRange is [off, off+n) of a file.
type byteRange struct{ off, n int64 }

// chunkRanges returns the byte ranges of the task's projected column
// chunks, sorted and coalesced: neighbours closer than gap become one range.
func (t *task) chunkRanges(gap int64) ([]byteRange, error) {
	var rs []byteRange
	for _, rg := range t.rowGroups {
		meta := t.f.md.RowGroup(rg)
		for _, leaf := range t.f.leafColumns() {
			cc, err := meta.ColumnChunk(leaf)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, t.f.src.name, err)
			}
			if _, err := compress.GetCodec(cc.Compression()); err != nil {
				return nil, fmt.Errorf("%w: %s: row group %d column %d: %v", ErrUnsupported, t.f.src.name, rg, leaf, err)
			}
			r, err := chunkRange(cc, t.f.src.size)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: row group %d column %d: %v", ErrCorrupt, t.f.src.name, rg, leaf, err)
			}
			rs = append(rs, r)
		}
	}
	return coalesce(rs, gap), nil
}

func coalesce(rs []byteRange, gap int64) []byteRange {
	slices.SortFunc(rs, func(a, b byteRange) int { return int(a.off - b.off) })
	var out []byteRange
	for _, r := range rs {
		if k := len(out); k > 0 && r.off <= out[k-1].off+out[k-1].n+gap {
			end := max(out[k-1].off+out[k-1].n, r.off+r.n)
			out[k-1].n = end - out[k-1].off
			continue
		}
		out = append(out, r)
	}
	return out
}

// fetched serves ReadAt from ranges fetched ahead, falling back to the file
// for anything outside them (counted: it should not happen).
type fetched struct {
	src    *source
	ctx    context.Context
	ranges []byteRange
	data   [][]byte // data[i] holds ranges[i]: a slice of buf
	// buf is the one buffer the ranges are read into, from fetchBuffers;
	// nil once released.
	buf       []byte
	mu        sync.Mutex
	fallbacks int
}

// release returns the fetched bytes' buffer to fetchBuffers: the caller
// is done reading them (the decode has ended) and no fetch writes them.
func (f *fetched) release() {
	if f.buf != nil {
		fetchBuffers.put(f.buf)
		f.buf, f.data = nil, nil
	}
}

func (f *fetched) ReadAt(p []byte, off int64) (int, error) {
	for i, r := range f.ranges {
		if off >= r.off && off+int64(len(p)) <= r.off+r.n {
			return copy(p, f.data[i][off-r.off:]), nil
		}
	}
	f.mu.Lock()
	f.fallbacks++
	f.mu.Unlock()
	if err := f.src.readAt(f.ctx, p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// file is the fetched bytes as the seekable file arrow-go reads.
func (f *fetched) file() *io.SectionReader { return io.NewSectionReader(f, 0, f.src.size) }

// readStats counts what reading a task did.
type readStats struct {
	ranges, fetchedBytes int64
	fallbacks            int
}

// readTask fetches the task's column chunks in as few ranged reads as the
// gap allows (in parallel), then decodes its row groups into records of at
// most batchRows rows, calling emit for each (emit owns the record).
func readTask(ctx context.Context, t *task, gap, batchRows int64, mem memory.Allocator, emit func(arrow.RecordBatch) error) (readStats, error) {
	ranges, err := t.chunkRanges(gap)
	if err != nil {
		return readStats{}, err
	}
	fr, st, err := fetchTask(ctx, t, ranges)
	if err != nil {
		return st, err
	}
	err = decode(ctx, t, fr, batchRows, mem, emit)
	st.fallbacks = fr.fallbacks
	fr.release()
	return st, err
}

// fetchTask fetches ranges, the task's column chunks from chunkRanges, in
// parallel into one buffer from fetchBuffers, and returns them as the file
// its decode reads; the caller releases it once the decode has ended.
func fetchTask(ctx context.Context, t *task, ranges []byteRange) (*fetched, readStats, error) {
	n := rangeBytes(ranges)
	fr := &fetched{src: t.f.src, ctx: ctx, ranges: ranges, data: make([][]byte, len(ranges)), buf: fetchBuffers.get(n)}
	var at int64
	for i, r := range ranges {
		fr.data[i] = fr.buf[at : at+r.n : at+r.n]
		at += r.n
	}
	st := readStats{ranges: int64(len(ranges)), fetchedBytes: n}
	if err := fetchRanges(ctx, t.f.src, fr); err != nil {
		fr.release() // every read into it has returned
		return nil, st, err
	}
	return fr, st, nil
}

// fetchHolds is the bytes a fetch of ranges holds: its buffer's capacity
// (see bufferClass).
func fetchHolds(ranges []byteRange) int64 { return bufferClass(rangeBytes(ranges)) }

// rangeBytes is the bytes of rs: what a fetch of them reads. Every range
// lies inside one file, so the sum of coalesced ranges cannot overflow.
func rangeBytes(rs []byteRange) int64 {
	var n int64
	for _, r := range rs {
		n += r.n
	}
	return n
}

// rangesReader is a file that fetches many ranges into given buffers in
// one call: a gcsfs.File issues them together (on the multi-range
// downloader's streams of a zonal bucket, as parallel GETs elsewhere),
// exactly, without prefetching past them.
type rangesReader interface {
	ReadRangesInto(ctx context.Context, rs []gcsfs.Range, dst [][]byte) error
}

// fetchRanges fills fr.data with the bytes of fr.ranges: in one vectored
// call when the file offers it, else rangeFetchers ReadAts at a time. On a
// file that reopens for free (source.reopen) the call runs on a handle of
// its own: a gcsfs file's GETs are bounded per handle (PoolSize), so the
// tasks of one big file fetched at once would otherwise share one handle's
// GETs and a dataset of few large files would fetch at the rate of one.
func fetchRanges(ctx context.Context, src *source, fr *fetched) error {
	if src.reopen != nil {
		f, err := src.reopen(ctx)
		if err != nil {
			return fmt.Errorf("dataset: %s: reopen: %w", src.name, src.readErr(err))
		}
		defer f.Close()
		return readRanges(ctx, src, f, fr)
	}
	if rr, ok := src.r.(rangesReader); ok {
		return readRanges(ctx, src, rr, fr)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rangeFetchers)
	for i, r := range fr.ranges {
		g.Go(func() error {
			if err := src.readAt(gctx, fr.data[i], r.off); err != nil {
				return fmt.Errorf("dataset: %s: read [%d, %d): %w", src.name, r.off, r.off+r.n, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// readRanges fills fr.data with one vectored call of rr, a handle to src.
func readRanges(ctx context.Context, src *source, rr rangesReader, fr *fetched) error {
	rs := make([]gcsfs.Range, len(fr.ranges))
	for i, r := range fr.ranges {
		rs[i] = gcsfs.Range{Offset: r.off, Length: r.n}
	}
	if err := rr.ReadRangesInto(ctx, rs, fr.data); err != nil {
		return fmt.Errorf("dataset: %s: read %d ranges: %w", src.name, len(rs), src.readErr(err))
	}
	return nil
}

// decode runs arrow-go over the prefetched bytes and conforms every record
// to the dataset's schema. Decoding errors (and decoder panics on corrupt
// pages) become errors wrapping ErrCorrupt, and so does a row count that
// differs from the footer's.
func decode(ctx context.Context, t *task, fr *fetched, batchRows int64, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	name := t.f.src.name
	if len(t.f.leaves) == 0 {
		return emitNulls(t, batchRows, mem, emit)
	}
	if err := checkInt96(t, fr); err != nil {
		return err
	}
	rr, err := openColumns(ctx, t, fr, batchRows, mem)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	defer rr.release()
	var rows int64 // decoded so far
	for {
		rec, err := rr.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %s: row groups %v: %v", ErrCorrupt, name, t.rowGroups, err)
		}
		if rec == nil {
			break
		}
		from := rows
		rows += rec.NumRows()
		if rows > t.groupRows {
			rec.Release()
			break
		}
		if rec = t.keep(rec, from); rec == nil {
			continue
		}
		if rec, err = conform(ctx, rec, t.f.schema, mem); err != nil {
			return fmt.Errorf("dataset: %s: %w", name, err)
		}
		// emit runs outside the recover: a panic in an operator is the
		// caller's bug, not a corrupt file.
		if err := emit(rec); err != nil {
			return err
		}
	}
	if rows != t.groupRows {
		return fmt.Errorf("%w: %s: row groups %v decoded %d rows, the footer says %d", ErrCorrupt, name, t.rowGroups, rows, t.groupRows)
	}
	return nil
}

// keep cuts a decoded record, whose first row is row from of the task's row
// groups, to the task's rows [skip, skip+rows): the record itself, a slice
// of it, or nil when none of its rows are wanted (rec is released then).
func (t *task) keep(rec arrow.RecordBatch, from int64) arrow.RecordBatch {
	n := rec.NumRows()
	lo, hi := max(t.skip-from, 0), min(t.skip+t.rows-from, n)
	if lo >= hi {
		rec.Release()
		return nil
	}
	if lo == 0 && hi == n {
		return rec
	}
	s := rec.NewSlice(lo, hi)
	rec.Release()
	return s
}

// emitNulls emits the task's rows as all-null records: the file has none
// of the projected columns.
func emitNulls(t *task, batchRows int64, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	for left := t.rows; left > 0; {
		n := min(left, batchRows)
		cols := make([]arrow.Array, t.f.schema.NumFields())
		for i, f := range t.f.schema.Fields() {
			cols[i] = array.MakeArrayOfNull(mem, f.Type, int(n))
		}
		rec := array.NewRecordBatch(t.f.schema, cols, n)
		for _, c := range cols {
			c.Release()
		}
		if err := emit(rec); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// recordSize is the memory a record's buffers hold: their capacity, not
// their length. (util.TotalRecordSize counts lengths, but a decoder grows
// its buffers geometrically, so a block's buffers can hold twice the
// bytes its values take; the budget must count what the heap holds.)
// A buffer shared by several columns counts once.
func recordSize(r arrow.RecordBatch) int64 {
	seen := map[*memory.Buffer]bool{}
	var n int64
	for _, c := range r.Columns() {
		n += arrayDataSize(c.Data(), seen)
	}
	return n
}

func arrayDataSize(d arrow.ArrayData, seen map[*memory.Buffer]bool) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil && !seen[b] {
			seen[b] = true
			n += int64(b.Cap())
		}
	}
	for _, c := range d.Children() {
		n += arrayDataSize(c, seen)
	}
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		n += arrayDataSize(dict, seen)
	}
	return n
}
