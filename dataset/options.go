package dataset

import (
	"context"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// The defaults of ReadOptions, BatchOptions and SplitOptions: a zero (or
// negative) field means the constant named after it. They are exported so
// that callers that show or choose these settings (a CLI's help, a job's
// flags) state the same numbers as the package.
const (
	DefaultTargetBlockBytes = 64 << 20  // ReadOptions.TargetBlockBytes
	DefaultBatchRows        = 65536     // ReadOptions.BatchRows
	DefaultCoalesceGap      = 1 << 20   // ReadOptions.CoalesceGap
	DefaultWorkers          = 4         // ReadOptions.Workers
	DefaultMemoryBudget     = 512 << 20 // ReadOptions.MemoryBudget

	DefaultBatchSize       = 256 // BatchOptions.BatchSize
	DefaultPrefetchBatches = 1   // BatchOptions.PrefetchBatches
	DefaultCollateWorkers  = 1   // BatchOptions.CollateWorkers

	DefaultAbandonTimeout = 10 * time.Minute // SplitOptions.AbandonTimeout
)

// MetadataFetchEnv is the environment variable ReadParquet reads, once per
// call, when ReadOptions.MetadataFetch is MetadataDefault: "inline" picks
// Inline, anything else Threaded. It is exported so that tools that set it
// for a child process name it the same way.
const MetadataFetchEnv = "ZONALREAD_METADATA_FETCH"

// Fixed sizes of the machinery, not options.
const (
	// footerReaders is how many footers ReadParquet reads at once.
	footerReaders = 8
	// footerGuess is how much of a file's tail one read fetches: enough
	// for the footer of most files, so the footer costs one ranged read.
	footerGuess = 64 << 10
	// calibrationHeadroom is how many times its reservation a task may
	// decode to before the loop has measured one (dictionary-encoded
	// strings reach several times): with room for Workers such tasks in
	// the budget, the first decodes start together (see loop.startDecodes).
	calibrationHeadroom = 16
	// decodePeak is a running read task's memory over the size of the
	// blocks it ends with: measured with arrow-go v18 on dictionary-encoded
	// columns (page buffers, dictionary caches, builders grown past their
	// final length) at about three (see TestMemoryBudgetIter).
	decodePeak = 3
	// footerLookahead is how many files the Threaded fetcher resolves
	// ahead of the tasks the loop has launched: enough to hide one footer
	// read behind the reads of the file before it, and few enough that a
	// Limit met early leaves the other footers unread.
	footerLookahead = 2
	// rangeFetchers is how many column-chunk ranges one read task fetches
	// at once.
	rangeFetchers = 8
	// splitChunkRows is the rows each equal split gets per round.
	splitChunkRows = 1024
)

// MetadataFetch says how the executor resolves file footers.
type MetadataFetch int

const (
	// MetadataDefault takes the mode from the environment variable
	// MetadataFetchEnv ("inline" or "threaded"), else Threaded.
	MetadataDefault MetadataFetch = iota
	// Threaded resolves footers on a background goroutine: the scheduling
	// loop never waits for them and plans from what it already has.
	Threaded
	// Inline fetches each footer on the scheduling loop before planning its
	// tasks: simple, and blocking.
	Inline
)

// String returns "threaded", "inline" or "default".
func (m MetadataFetch) String() string {
	switch m {
	case Threaded:
		return "threaded"
	case Inline:
		return "inline"
	}
	return "default"
}

// metadataFetchFromEnv is the mode MetadataDefault stands for, read from
// MetadataFetchEnv. Only ReadParquetContext calls it: the environment is
// read at the edge, never by the pipeline.
func metadataFetchFromEnv() MetadataFetch {
	if os.Getenv(MetadataFetchEnv) == "inline" {
		return Inline
	}
	return Threaded
}

// ReadOptions configure ReadParquet. A nil *ReadOptions means the defaults.
type ReadOptions struct {
	// Columns projects the read onto these columns: top-level names, or
	// dotted paths for nested leaves (see Schema in the package doc); nil
	// reads every column.
	Columns []string
	// TargetBlockBytes merges small row groups of a file into one task up
	// to this many uncompressed bytes. Default DefaultTargetBlockBytes
	// (64 MiB).
	TargetBlockBytes int64
	// BatchRows caps the rows of one block. Default DefaultBatchRows
	// (65536).
	BatchRows int64
	// CoalesceGap joins column-chunk ranges closer than this into one
	// ranged read. Default DefaultCoalesceGap (1 MiB).
	CoalesceGap int64
	// Workers is how many read tasks decode at once (at most GOMAXPROCS: a
	// decode spreads its columns over the CPUs already, so more decodes
	// than CPUs would only hold more memory); Workers more may be
	// fetching their column chunks ahead of them, and Workers more may wait,
	// fetched, for a decode, within MemoryBudget, so the link is busy
	// while the CPU decodes. Under a Limit, at most Workers tasks are in
	// flight in all.
	// Default DefaultWorkers (4).
	Workers int
	// MemoryBudget caps every byte the pipeline holds: reads in flight
	// (reserved before they start, from the footer's estimate scaled by
	// what earlier reads decoded to, and corrected to the real Arrow size
	// when they end), blocks queued or held by operators, and on the
	// consumer side the rows Batches or a split holds, batches queued,
	// being collated, parked for order or current, and the local shuffle
	// buffer. A slow consumer stops new reads instead of growing memory.
	// The one exception: when the consumer waits and nothing is running or
	// queued for it, one read starts even if it does not fit, so a block
	// larger than the budget still moves. The FS's own buffers (gcsfs
	// PrefetchBudget) are not part of it. Default DefaultMemoryBudget
	// (512 MiB).
	MemoryBudget int64
	// MetadataFetch picks Inline or Threaded footer resolution; with
	// MetadataDefault, ReadParquet reads MetadataFetchEnv.
	MetadataFetch MetadataFetch
	// MaxErroredBlocks is how many failed read tasks and unreadable files
	// (each one block) are counted and skipped before the execution (or
	// ReadParquet, for files whose footer fails) fails; 0 fails on the
	// first, negative never fails. A panic in user code always fails.
	MaxErroredBlocks int
	// PreserveOrder emits blocks in file, row-group, row order; otherwise
	// tasks' blocks interleave as they finish (each task's in order).
	PreserveOrder bool
}

// normalize returns a copy of o with every default filled in;
// MetadataDefault becomes fromEnv, the mode the caller read from the
// environment.
func (o *ReadOptions) normalize(fromEnv MetadataFetch) ReadOptions {
	r := valueOr(o)
	r.TargetBlockBytes = positiveOr(r.TargetBlockBytes, DefaultTargetBlockBytes)
	r.BatchRows = positiveOr(r.BatchRows, DefaultBatchRows)
	r.CoalesceGap = positiveOr(r.CoalesceGap, DefaultCoalesceGap)
	r.Workers = positiveOr(r.Workers, DefaultWorkers)
	r.MemoryBudget = positiveOr(r.MemoryBudget, DefaultMemoryBudget)
	if r.MetadataFetch == MetadataDefault {
		r.MetadataFetch = fromEnv
	}
	return r
}

// BatchOptions configure Batches. A nil *BatchOptions means the defaults.
type BatchOptions struct {
	// BatchSize is the rows of each batch (the last may be short).
	// Default DefaultBatchSize (256).
	BatchSize int64
	// DropLast drops a short last batch.
	DropLast bool
	// PrefetchBatches is how many batches are formed ahead of the
	// consumer. Default DefaultPrefetchBatches (1).
	PrefetchBatches int
	// LocalShuffleBufferSize, when positive, shuffles rows before
	// batching, using Seed: rows collect until at least this many (or half
	// the memory budget's worth) are held, are put in random order at
	// once, and batches are drawn from that pool while later rows collect
	// for the next; a batch costs time in proportion to the batch.
	LocalShuffleBufferSize int64
	// Seed seeds the local shuffle.
	Seed uint64
	// Collate, when set, turns each batch into the value the consumer gets
	// (Batch.Collated), run by CollateWorkers goroutines that share the
	// input under a lock and write one output queue of CollateWorkers
	// entries: at most 2*CollateWorkers batches are between the batch
	// former and the consumer, those parked for PreserveOrder included.
	// The batches count in the memory budget; what Collate returns does
	// not (it is the caller's type).
	Collate func(ctx context.Context, rec arrow.RecordBatch) (any, error)
	// CollateWorkers is N above. Default DefaultCollateWorkers (1).
	CollateWorkers int
	// PreserveOrder delivers collated batches in the order they were
	// formed; otherwise in the order Collate finishes them.
	PreserveOrder bool
}

// normalize returns a copy of o with every default filled in.
func (o *BatchOptions) normalize() BatchOptions {
	r := valueOr(o)
	r.BatchSize = positiveOr(r.BatchSize, DefaultBatchSize)
	r.PrefetchBatches = positiveOr(r.PrefetchBatches, DefaultPrefetchBatches)
	r.CollateWorkers = positiveOr(r.CollateWorkers, DefaultCollateWorkers)
	return r
}

// SplitOptions configure StreamingSplitWith. A nil *SplitOptions means the
// defaults.
type SplitOptions struct {
	// AbandonTimeout is how long the coordinator waits for a split that
	// does not take its next block (equal mode) or does not finish an
	// epoch the others have finished, before failing the others with
	// ErrSplitAbandoned instead of hanging them. Default
	// DefaultAbandonTimeout (10 minutes).
	AbandonTimeout time.Duration
}

// normalize returns a copy of o with every default filled in.
func (o *SplitOptions) normalize() SplitOptions {
	r := valueOr(o)
	r.AbandonTimeout = positiveOr(r.AbandonTimeout, DefaultAbandonTimeout)
	return r
}

// valueOr is *o, or T's zero value when o is nil.
func valueOr[T any](o *T) T {
	if o == nil {
		var zero T
		return zero
	}
	return *o
}

// positiveOr is v, or def when v is not positive.
func positiveOr[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
