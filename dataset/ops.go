package dataset

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// operator is one step applied to every block.
type operator struct {
	name  string
	fn    func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) // nil for Limit
	limit int64
	sem   chan struct{} // caps concurrent fn calls (MapBatches)

	mu    sync.Mutex
	stats OpStats
}

// OpStats are one operator's counters.
type OpStats struct {
	Name        string
	Tasks       int64         // blocks (or read tasks, for the read) processed
	Rows, Bytes int64         // output rows and bytes
	WallTime    time.Duration // summed over calls
	TimeBlocked time.Duration // waiting for a slot (MapBatches) or for budget (read)
}

func (op *operator) apply(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	var waited time.Duration
	if op.sem != nil {
		t0 := time.Now()
		select {
		case op.sem <- struct{}{}:
		case <-ctx.Done():
			rec.Release()
			return nil, ctx.Err()
		}
		waited = time.Since(t0)
		defer func() { <-op.sem }()
	}
	start := time.Now()
	out, err := callUser(op.name, func() (arrow.RecordBatch, error) { return op.fn(ctx, rec) })
	if err == nil && out == nil {
		err = errors.New("returned a nil record and no error")
	}
	if out != rec || err != nil {
		rec.Release()
	}
	if err != nil {
		if out != nil && out != rec {
			out.Release()
		}
		var pe *PanicError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("dataset: %s: %w", op.name, err)
	}
	op.mu.Lock()
	op.stats.Tasks++
	op.stats.Rows += out.NumRows()
	op.stats.Bytes += recordSize(out)
	op.stats.WallTime += time.Since(start)
	op.stats.TimeBlocked += waited
	op.mu.Unlock()
	return out, nil
}

func (op *operator) snapshot() OpStats {
	op.mu.Lock()
	defer op.mu.Unlock()
	s := op.stats
	s.Name = op.name
	return s
}

// Map applies fn to every block. fn must not release its input; it returns
// the input itself (passed through) or a new record, which the dataset then
// owns.
func (d *Dataset) Map(fn func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error)) *Dataset {
	return d.with(&operator{name: "Map", fn: fn})
}

// MapBatches is Map with at most concurrency calls of fn running at once
// (0 means as many as there are workers).
func (d *Dataset) MapBatches(fn func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error), concurrency int) *Dataset {
	op := &operator{name: "MapBatches", fn: fn}
	if concurrency > 0 {
		op.sem = make(chan struct{}, concurrency)
	}
	return d.with(op)
}

// Filter keeps the rows for which keep returns true. keep gets the block
// and returns one bool per row.
func (d *Dataset) Filter(keep func(rec arrow.RecordBatch) ([]bool, error)) *Dataset {
	return d.with(&operator{name: "Filter", fn: func(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		mask, err := keep(rec)
		if err != nil {
			return nil, err
		}
		if int64(len(mask)) != rec.NumRows() {
			return nil, fmt.Errorf("mask has %d entries for %d rows", len(mask), rec.NumRows())
		}
		b := array.NewBooleanBuilder(memory.DefaultAllocator)
		defer b.Release()
		b.AppendValues(mask, nil)
		arr := b.NewBooleanArray()
		defer arr.Release()
		return compute.FilterRecordBatch(ctx, rec, arr, compute.DefaultFilterOptions())
	}})
}

// Select keeps only the named top-level columns, in that order.
func (d *Dataset) Select(columns ...string) *Dataset {
	return d.with(&operator{name: "Select", fn: func(_ context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		fields := make([]arrow.Field, 0, len(columns))
		cols := make([]arrow.Array, 0, len(columns))
		for _, c := range columns {
			idx := rec.Schema().FieldIndices(c)
			if len(idx) == 0 {
				return nil, fmt.Errorf("no column %q", c)
			}
			fields = append(fields, rec.Schema().Field(idx[0]))
			cols = append(cols, rec.Column(idx[0]))
		}
		return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows()), nil
	}})
}

// Limit stops the dataset after n rows. Once the rows produced (queued,
// handed over, or held in the PreserveOrder reorder buffer) are enough, no
// further footer is resolved and no further read task starts, in both
// metadata modes; once n rows are queued, reads in flight are cancelled.
// Operators added after a Limit run on the limited blocks.
func (d *Dataset) Limit(n int64) *Dataset {
	if n < 0 {
		panic("dataset: negative Limit")
	}
	return d.with(&operator{name: "Limit", limit: n})
}

// PanicError is the error of an execution whose user code (a Map, Filter
// or Collate function) panicked: the execution shuts down and every
// iterator ends with it.
type PanicError struct {
	Op    string // the operator ("Map", "Filter", "Collate", ...)
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack
}

// Error describes the panic.
func (e *PanicError) Error() string {
	return fmt.Sprintf("dataset: panic in %s: %v\n%s", e.Op, e.Value, e.Stack)
}

// callUser runs fn, turning a panic into a *PanicError.
func callUser[T any](op string, fn func() (T, error)) (out T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Op: op, Value: r, Stack: debug.Stack()}
		}
	}()
	return fn()
}
