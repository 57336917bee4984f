package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"golang.org/x/sync/errgroup"
)

// footer is a parsed file footer with its projection resolved.
type footer struct {
	src    *source
	md     *metadata.FileMetaData
	leaves []int         // projected leaf columns; nil means all
	schema *arrow.Schema // Arrow schema of the projected columns
}

// resolve parses the projection against the file's schema.
func resolve(src *source, md *metadata.FileMetaData, columns []string) (*footer, error) {
	f := &footer{src: src, md: md}
	if len(columns) > 0 {
		for _, c := range columns {
			i := md.Schema.ColumnIndexByName(c)
			if i < 0 {
				return nil, fmt.Errorf("dataset: %s: no column %q", src.name, c)
			}
			f.leaves = append(f.leaves, i)
		}
	}
	props := pqarrow.ArrowReadProperties{}
	full, err := pqarrow.FromParquet(md.Schema, &props, md.KeyValueMetadata())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: schema: %v", ErrCorrupt, src.name, err)
	}
	if f.leaves == nil {
		f.schema = full
		return f, nil
	}
	// Flat schemas: leaf i is top-level field i. Nested columns select
	// their whole top-level field.
	var fields []arrow.Field
	seen := map[int]bool{}
	for _, leaf := range f.leaves {
		top := md.Schema.ColumnRoot(leaf)
		idx := md.Schema.Root().FieldIndexByField(top)
		if idx < 0 || seen[idx] {
			continue
		}
		seen[idx] = true
		fields = append(fields, full.Field(idx))
	}
	f.schema = arrow.NewSchema(fields, nil)
	return f, nil
}

func (f *footer) leafColumns() []int {
	if f.leaves != nil {
		return f.leaves
	}
	all := make([]int, f.md.Schema.NumColumns())
	for i := range all {
		all[i] = i
	}
	return all
}

// task is one unit of reading: some row groups of one file.
type task struct {
	f         *footer
	rowGroups []int
	rows      int64
	estBytes  int64 // uncompressed bytes of the projected columns
}

// planTasks makes one task per row group, merging neighbouring small row
// groups of a file until a task reaches target bytes.
func planTasks(f *footer, target int64) []*task {
	var tasks []*task
	var cur *task
	for rg := range f.md.NumRowGroups() {
		meta := f.md.RowGroup(rg)
		est := int64(0)
		for _, leaf := range f.leafColumns() {
			if cc, err := meta.ColumnChunk(leaf); err == nil {
				est += cc.TotalUncompressedSize()
			}
		}
		if cur == nil || cur.estBytes+est > target {
			cur = &task{f: f}
			tasks = append(tasks, cur)
		}
		cur.rowGroups = append(cur.rowGroups, rg)
		cur.rows += meta.NumRows()
		cur.estBytes += est
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
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			n := cc.TotalCompressedSize()
			if start < 0 || n < 0 || start+n > t.f.src.size {
				return nil, fmt.Errorf("%w: %s: column chunk [%d, %d) outside the %d-byte file", ErrCorrupt, t.f.src.name, start, start+n, t.f.src.size)
			}
			rs = append(rs, byteRange{start, n})
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
	src       *source
	ctx       context.Context
	ranges    []byteRange
	data      [][]byte
	pos       int64
	mu        sync.Mutex
	fallbacks int
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

func (f *fetched) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case 0:
		f.pos = off
	case 1:
		f.pos += off
	case 2:
		f.pos = f.src.size + off
	}
	return f.pos, nil
}

func (f *fetched) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.pos)
	f.pos += int64(n)
	return n, err
}

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
	fr := &fetched{src: t.f.src, ctx: ctx, ranges: ranges, data: make([][]byte, len(ranges))}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	var st readStats
	for i, r := range ranges {
		st.ranges++
		st.fetchedBytes += r.n
		g.Go(func() error {
			buf := make([]byte, r.n)
			if err := t.f.src.readAt(gctx, buf, r.off); err != nil {
				return fmt.Errorf("dataset: %s: read [%d, %d): %w", t.f.src.name, r.off, r.off+r.n, err)
			}
			fr.data[i] = buf
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	err = decode(ctx, t, fr, batchRows, mem, emit)
	st.fallbacks = fr.fallbacks
	return st, err
}

// decode runs arrow-go over the prefetched bytes. Decoding errors (and
// decoder panics on corrupt pages) become errors wrapping ErrCorrupt.
func decode(ctx context.Context, t *task, fr *fetched, batchRows int64, mem memory.Allocator, emit func(arrow.RecordBatch) error) error {
	pr, err := file.NewParquetReader(fr, file.WithMetadata(t.f.md))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, t.f.src.name, err)
	}
	// Parallel is off: arrow-go would start one goroutine per column with no
	// cap; parallelism comes from tasks running on the executor's workers.
	ar, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: batchRows}, mem)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, t.f.src.name, err)
	}
	rr, err := ar.GetRecordReader(ctx, t.f.leafColumns(), t.rowGroups)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, t.f.src.name, err)
	}
	defer rr.Release()
	for {
		rec, err := nextRecord(rr)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %s: row groups %v: %v", ErrCorrupt, t.f.src.name, t.rowGroups, err)
		}
		if rec == nil {
			return nil
		}
		// emit runs outside the recover: a panic in an operator is the
		// caller's bug, not a corrupt file.
		if err := emit(rec); err != nil {
			return err
		}
	}
}

// nextRecord returns the reader's next record (retained), nil at the end,
// or the decoding error — including a panic of the parquet decoders on a
// corrupt page.
func nextRecord(rr pqarrow.RecordReader) (rec arrow.RecordBatch, err error) {
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, fmt.Errorf("decoder panic: %v", r)
		}
	}()
	if !rr.Next() {
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, nil
	}
	rec = rr.RecordBatch()
	rec.Retain()
	return rec, nil
}

// recordSize is the bytes of a record's buffers.
func recordSize(r arrow.RecordBatch) int64 { return util.TotalRecordSize(r) }
