package dataset

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"golang.org/x/sync/errgroup"
)

// columnRecords decodes a task's projected columns into records, batch
// by batch, several columns at once: a task decoding alone (the first,
// while the loop calibrates, or the last) uses more than one core. It
// replaces arrow-go's record reader, whose Parallel mode starts one
// goroutine per column with no bound, and where a decoder panic on one of
// them (a corrupt page) would end the process.
type columnRecords struct {
	cols     []*pqarrow.ColumnReader
	schema   *arrow.Schema
	batch    int64 // rows per record
	parallel int   // columns decoded at once
	mem      memory.Allocator
}

// pageStreamBuffer is the buffer of arrow-go's buffered page stream over a
// task's fetched bytes: it holds page headers and small reads, while page
// bodies are copied from the fetched bytes straight into the page
// reader's reused buffers. The unbuffered stream first copies every column
// chunk whole into a buffer of its own (parquet.ReaderProperties
// GetStream): a second copy of every fetched byte, and about 190 MB of the
// 1.33 GB BenchmarkScan allocated per 256 MiB scan.
const pageStreamBuffer = 64 << 10

// openColumns sets the column readers up over the fetched bytes, decoding
// up to GOMAXPROCS columns at once; a panic of their setup on a corrupt
// file is an error.
func openColumns(ctx context.Context, t *task, fr *fetched, batchRows int64, mem memory.Allocator) (c *columnRecords, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("reader panic: %v", r)
		}
	}()
	// Buffered: see pageStreamBuffer.
	props := parquet.NewReaderProperties(mem)
	props.BufferedStreamEnabled = true
	props.BufferSize = pageStreamBuffer
	pr, err := file.NewParquetReader(fr.file(), file.WithMetadata(t.f.md), file.WithReadProps(props))
	if err != nil {
		return nil, err
	}
	// A column reader reserves a whole batch up front: a batch larger than
	// the task's rows would allocate memory no row fills.
	batch := max(1, min(batchRows, t.groupRows))
	ar, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: batch}, mem)
	if err != nil {
		return nil, err
	}
	cols, sc, err := ar.GetFieldReaders(ctx, t.f.leaves, t.rowGroups)
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, errors.New("no column reader for the projected leaves")
	}
	return &columnRecords{cols: cols, schema: sc, batch: batch, parallel: min(len(cols), runtime.GOMAXPROCS(0)), mem: mem}, nil
}

func (c *columnRecords) release() {
	for _, cr := range c.cols {
		cr.Release()
	}
}

// next returns the next record, nil at the end, or the decoding error —
// including a panic of the parquet decoders on a corrupt page, on any of
// the goroutines. The end is where a column has no more rows (a column
// shorter than the others is caught by decode's row count, or fails here
// building the record).
func (c *columnRecords) next(ctx context.Context) (rec arrow.RecordBatch, err error) {
	arrs := make([]arrow.Array, len(c.cols))
	defer func() {
		for _, a := range arrs {
			if a != nil {
				a.Release()
			}
		}
	}()
	var ended atomic.Bool
	var g errgroup.Group
	g.SetLimit(c.parallel)
	for i, cr := range c.cols {
		g.Go(func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("decoder panic: %v", r)
				}
			}()
			if err := ctx.Err(); err != nil {
				return err
			}
			chunked, err := cr.NextBatch(c.batch)
			if err != nil {
				return err
			}
			defer chunked.Release()
			if chunked.Len() == 0 {
				ended.Store(true)
				return nil
			}
			arrs[i], err = singleArray(chunked, c.mem)
			return err
		})
	}
	if err := g.Wait(); err != nil || ended.Load() {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, fmt.Errorf("record of columns of unequal lengths: %v", r)
		}
	}()
	return array.NewRecordBatch(c.schema, arrs, -1), nil
}

// singleArray is a column's decoded chunks as one array (what arrow-go's
// record reader makes of them).
func singleArray(ch *arrow.Chunked, mem memory.Allocator) (arrow.Array, error) {
	if chunks := ch.Chunks(); len(chunks) > 1 {
		return array.Concatenate(chunks, mem)
	}
	a := ch.Chunk(0)
	a.Retain()
	return a, nil
}
