package dataset

import (
	"math"
	"sync"
	"sync/atomic"
)

// memBudget counts every byte one execution's pipeline holds, wherever it
// is: reads in flight (a fetch's bytes held from its launch, a decode's
// reservation from its start, both corrected to the decoded size when the
// decode ends; see readjob.go), blocks queued or held by operators, and on the
// consumer side the rows a batch former or split holds, the batches queued
// or being collated, parked for order, or current. Whoever holds bytes
// counts them (hold) and whoever lets them go uncounts them (let); a
// handover between stages is a hold by the taker before the giver's let.
//
// The scheduling loop starts a fetch only when its bytes and the largest
// decode reservation it or a fetch before it promises fit under the limit,
// and a decode only when its reservation fits; the one exception is a
// consumer starving with nothing in flight or decoding (see startFetches
// and startDecodes), so a block larger than the budget still moves.
// Methods are safe for concurrent use.
type memBudget struct {
	limit int64

	mu         sync.Mutex
	used, high int64
	wake       chan struct{} // cap 1: signalled when bytes are let go

	reads   atomic.Int64 // fetches and decodes running now (the loop's count, for Stats)
	started atomic.Int64 // fetches and decodes started so far: with reads, tells a quiet pipeline
}

func newMemBudget(limit int64) *memBudget {
	return &memBudget{limit: limit, wake: make(chan struct{}, 1)}
}

// hold counts n more bytes held.
func (b *memBudget) hold(n int64) {
	b.mu.Lock()
	b.used += n
	b.high = max(b.high, b.used)
	b.mu.Unlock()
}

// let uncounts n bytes and wakes the loop, which may now start a read.
func (b *memBudget) let(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// adjust moves a count from was to now bytes (a reservation corrected, a
// buffer that grew or shrank).
func (b *memBudget) adjust(was, now int64) {
	if now >= was {
		b.hold(now - was)
	} else {
		b.let(was - now)
	}
}

// fits reports whether n more bytes stay within the limit.
func (b *memBudget) fits(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used+n <= b.limit
}

// room is the bytes left under the limit (0 when over it).
func (b *memBudget) room() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.limit-b.used, 0)
}

// usage returns the bytes held now and the most held at once.
func (b *memBudget) usage() (used, high int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.high
}

// sliceSize is the bytes a slice of rows [from, to) of rec, whose whole
// size is size, is counted for: its share by rows. Slices share their
// parent's buffers, so counting each slice whole would count those
// buffers once per slice.
func sliceSize(size, rows, from, to int64) int64 {
	if rows <= 0 {
		return 0
	}
	// size*(to-from)/rows without overflow for any realistic size: rows
	// and sizes are bounded by memory.
	return int64(float64(size) * float64(to-from) / float64(rows))
}

// saturatingMul is a*b for non-negative a and b, or MaxInt64 when that
// overflows.
func saturatingMul(a, b int64) int64 {
	if a > 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// saturatingAdd is a+b for non-negative a and b, or MaxInt64 when that
// overflows: sums of sizes a footer claims, which are untrusted.
func saturatingAdd(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}
