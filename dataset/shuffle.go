package dataset

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
)

// shuffleBuffer is Batches' local shuffle. Rows arrive in blocks; a batch is
// drawn from a pool of at least LocalShuffleBufferSize rows that was put in
// random order at once, so a batch costs time in proportion to the batch,
// not to the buffer:
//
//	arriving blocks ──► incoming (held as they came)
//	draw(n):  pool has n rows left?  ── yes ──► copy the pool's next n rows
//	             │ no                           (one Take of n rows)
//	             ▼
//	          pool = pool's rows left + incoming, in a fresh random order
//	          (one concatenation and one permutation of the pool)
//
// Forming a new pool copies its rows once; it happens after the previous
// pool was served, about pool/n draws, so each drawn row is copied a
// constant number of times. Batches are copies, not slices, so a batch
// held by the consumer never keeps a pool alive.
type shuffleBuffer struct {
	rng       *rand.Rand
	pool      arrow.RecordBatch // nil when no pool is formed
	poolBytes int64             // what the pool is counted for
	order     []int             // the pool's random order; rows order[next:] are left
	next      int
	incoming  rowCarry
}

func newShuffleBuffer(seed uint64) *shuffleBuffer {
	return &shuffleBuffer{rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995))}
}

// add takes over rec, counted for size; its rows join the next pool.
func (s *shuffleBuffer) add(rec arrow.RecordBatch, size int64) {
	s.incoming.add(rec, size)
}

// poolLeft is how many rows of the current pool are not drawn yet.
func (s *shuffleBuffer) poolLeft() int64 { return int64(len(s.order) - s.next) }

// rows is how many rows can still be drawn.
func (s *shuffleBuffer) rows() int64 { return s.poolLeft() + s.incoming.rows }

// draw removes n rows (0 < n <= rows()) and returns them, in random
// order, as one new record, and its size.
func (s *shuffleBuffer) draw(ctx context.Context, n int64) (arrow.RecordBatch, int64, error) {
	if n <= 0 || n > s.rows() {
		panic(fmt.Sprintf("dataset: shuffleBuffer.draw(%d) with %d rows", n, s.rows()))
	}
	if s.poolLeft() < n {
		if err := s.reform(ctx); err != nil {
			return nil, 0, err
		}
	}
	out, err := take(ctx, s.pool, s.order[s.next:s.next+int(n)])
	if err != nil {
		return nil, 0, err
	}
	s.next += int(n)
	if s.poolLeft() == 0 {
		s.dropPool()
	}
	return out, recordSize(out), nil
}

// reform makes a new pool of the rows left and the incoming ones, in a
// fresh random order.
func (s *shuffleBuffer) reform(ctx context.Context) error {
	if s.pool != nil {
		left, err := take(ctx, s.pool, s.order[s.next:])
		if err != nil {
			return err
		}
		s.dropPool()
		// The rows left go first so incoming keeps arrival order behind
		// them; the permutation below makes the order irrelevant.
		s.incoming.prepend(left, recordSize(left))
	}
	pool, err := concat(s.incoming.recs)
	if err != nil {
		return err
	}
	size := s.incoming.bytes
	if len(s.incoming.recs) > 1 {
		size = recordSize(pool)
	}
	s.incoming.release()
	s.pool, s.poolBytes, s.order, s.next = pool, size, s.rng.Perm(int(pool.NumRows())), 0
	return nil
}

func (s *shuffleBuffer) dropPool() {
	if s.pool != nil {
		s.pool.Release()
	}
	s.pool, s.poolBytes, s.order, s.next = nil, 0, nil, 0
}

// release drops every row held.
func (s *shuffleBuffer) release() {
	s.dropPool()
	s.incoming.release()
}

// heldBytes is what the rows held are counted for: the whole pool (its
// buffers stay until it is served) and the incoming blocks.
func (s *shuffleBuffer) heldBytes() int64 { return s.poolBytes + s.incoming.bytes }
