// Package prefetch turns a stream of reads of one object into ranged
// fetches: reads that follow each other start a prefetch window that grows
// as the run goes on, fetched ahead in parallel parts into preallocated
// buffers under a byte budget; random reads fetch exactly what they ask for.
//
// The decisions come from a streak detector that does no I/O (and is
// tested with plain traces): a read is sequential when it starts where the
// previous one ended; the MinStreak-th sequential read in a row starts
// prefetching; a read that breaks the run resets the window and drops the
// prefetched data it cannot use. The Engine carries the decisions out over
// a Fetcher, the one thing it needs from storage.
//
//	reads:        r1   r2   r3 ........ r4 ........ r5
//	object: [=====|====|====|==========|===========|=====================)
//	                        ^ streak 3: prefetch [r3 end, r3 end + window)
//	chunk:                  [ part | part | part | part ]   Concurrency parts,
//	                                                        fetched in parallel
//	r4 waits only for the part(s) holding its bytes, then copies them out;
//	when what is prefetched ahead of a read falls under half the window, the
//	engine tops it up to a full window (the window doubles per read up to
//	MaxPrefetch). Parts whose bytes are readable only once they end (a
//	checksum checked after the bytes it covers) hold the reader back, so
//	there the engine asks for the next window once half of this one has
//	arrived, not when a read passes its middle.
package prefetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/zonalread/zonalread/directbuf"
	"github.com/zonalread/zonalread/internal/byterange"
	"github.com/zonalread/zonalread/internal/defaults"
)

// Fetcher reads byte ranges of one object. mrdpool.Pool is one.
type Fetcher interface {
	// ReadAt fills p with the object's bytes at off, or returns the length
	// of the valid prefix and an error. It must honour ctx and must not
	// touch p after it returns.
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}

// ProgressFetcher is a Fetcher that can tell, while a range is in flight,
// how much of it has arrived, and whether those bytes are final.
// mrdpool.Pool is one.
type ProgressFetcher interface {
	Fetcher
	// ReadAtProgress is ReadAt that calls progress(k, final) when p[:k]
	// holds bytes that have arrived, never after it returns. With final,
	// they are the object's bytes and are never written again, and k
	// grows. Without, they may still fail a check (a checksum over bytes
	// already written) and be fetched again, and k may fall back: they
	// are final only once ReadAtProgress returns them. The engine serves
	// reads from final bytes only; it uses arrivals to ask for the next
	// window early.
	ReadAtProgress(ctx context.Context, p []byte, off int64, progress func(k int64, final bool)) (int, error)
}

// The defaults of Options, applied by its normalize method.
const (
	// DefaultBlockSize is the default Options.BlockSize.
	DefaultBlockSize = 1 << 20
	// DefaultMaxPrefetch is the default Options.MaxPrefetch.
	DefaultMaxPrefetch = 64 << 20
	// DefaultMinStreak is the default Options.MinStreak: a readahead cache
	// that fetches the block it needs and the next one together makes two
	// reads in a row look sequential, which must not start prefetching.
	DefaultMinStreak = 3
	// DefaultConcurrency is the default Options.Concurrency.
	DefaultConcurrency = 8
	// DefaultMinPartSize is the default Options.MinPartSize.
	DefaultMinPartSize = 1 << 20
)

// Options tune an Engine. A nil *Options means the defaults; zero fields
// take their defaults, normalised in one place (normalize).
type Options struct {
	// BlockSize is the smallest prefetch window. Default DefaultBlockSize
	// (1 MiB).
	BlockSize int64
	// MaxPrefetch is the largest window: how far ahead of the reader data
	// is fetched. Default DefaultMaxPrefetch (64 MiB); never under
	// BlockSize.
	MaxPrefetch int64
	// FirstWindow is the window a sequential run starts with, e.g. the
	// link's bandwidth-delay product (clamped to [BlockSize,
	// MaxPrefetch]). Default BlockSize.
	FirstWindow int64
	// MinStreak is the sequential read that starts prefetching. Default
	// DefaultMinStreak (3).
	MinStreak int
	// StartAtZero makes a Read (not a ReadAt) at offset 0 start a run at
	// once, with
	// FirstWindow: a reader that starts at the beginning of an object
	// almost always reads on, and waiting for the MinStreak-th read costs
	// round trips a small object cannot afford. (A readahead cache reading
	// blocks 0 and 1 then prefetches.)
	StartAtZero bool
	// Concurrency is how many parts a prefetch (or a large direct read) is
	// split into, fetched in parallel. Default DefaultConcurrency (8).
	Concurrency int
	// MinPartSize is the smallest part. Default DefaultMinPartSize (1 MiB).
	MinPartSize int64
	// Disabled turns prefetching off: every read fetches exactly its bytes.
	Disabled bool
	// Buffers holds prefetched data under its byte budget; several engines
	// may share one. Default: a pool of 2*MaxPrefetch for this engine.
	Buffers *directbuf.Pool
}

func (o *Options) normalize() Options {
	r := defaults.Of(o)
	r.BlockSize = defaults.Positive(r.BlockSize, DefaultBlockSize)
	r.MaxPrefetch = max(defaults.Positive(r.MaxPrefetch, DefaultMaxPrefetch), r.BlockSize)
	r.MinStreak = defaults.Positive(r.MinStreak, DefaultMinStreak)
	r.Concurrency = defaults.Positive(r.Concurrency, DefaultConcurrency)
	r.MinPartSize = defaults.Positive(r.MinPartSize, DefaultMinPartSize)
	if r.Buffers == nil {
		r.Buffers = directbuf.NewPool(2 * r.MaxPrefetch)
	}
	return r
}

// Stats are an engine's counters, in bytes unless named otherwise.
type Stats struct {
	Asked      int64 // bytes the reads asked for (clipped to the object)
	Fetched    int64 // bytes requested from the Fetcher, direct and prefetched
	Prefetched int64 // of Fetched, bytes fetched ahead of the reads
	Served     int64 // bytes of reads served from prefetched data
	Wasted     int64 // prefetched bytes dropped without being read
	Requests   int64 // calls to the Fetcher, and bodies adopted (AdoptParts)
	Waits      int64 // reads that waited for prefetched bytes still in flight
}

// Engine serves reads of one object of a known size. ReadAt is safe for
// concurrent use, though streak detection assumes one sequential reader.
type Engine struct {
	f    Fetcher
	size int64
	opts Options

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	bg     sync.WaitGroup // part fetches and buffer releases

	mu     sync.Mutex
	det    *detector
	chunks []*chunk // prefetched ranges, sorted, disjoint
	closed bool

	asked, fetched, prefetched, served, wasted, requests, waits atomic.Int64
}

// chunk is one prefetched range [off, off+buf.Len()).
type chunk struct {
	off    int64
	buf    *directbuf.Buffer
	cancel context.CancelFunc
	users  sync.WaitGroup // parts in flight and readers copying out
	served atomic.Int64
	// arrived counts bytes of parts whose bytes are final only at their
	// end that arrived before it; spurred is set once it asked for the
	// next window (arrivedIn).
	arrived atomic.Int64
	spurred atomic.Bool
}

func (c *chunk) end() int64 { return c.off + int64(c.buf.Len()) }

// errDropped fails the parts of a chunk that was dropped before they
// finished; a reader that meets it fetches the bytes itself.
var errDropped = errors.New("prefetch: prefetched range dropped")

// New returns an engine for an object of size bytes read through f.
// It panics if size is negative.
func New(f Fetcher, size int64, opts *Options) *Engine {
	if size < 0 {
		panic("prefetch: negative size")
	}
	o := opts.normalize()
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		f: f, size: size, opts: o, ctx: ctx, cancel: cancel,
		det: newDetector(o.BlockSize, o.MaxPrefetch, o.MinStreak).withStart(o.FirstWindow, o.StartAtZero),
	}
}

// Size returns the object's size.
func (e *Engine) Size() int64 { return e.size }

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Asked: e.asked.Load(), Fetched: e.fetched.Load(), Prefetched: e.prefetched.Load(),
		Served: e.served.Load(), Wasted: e.wasted.Load(), Requests: e.requests.Load(), Waits: e.waits.Load(),
	}
}

func errClosed() error { return fmt.Errorf("prefetch: engine closed: %w", fs.ErrClosed) }

// ReadAt reads len(p) bytes at off, following io.ReaderAt: it returns
// len(p) and nil, or fewer bytes and an error (io.EOF at the end of the
// object). A zero-length read returns at once and does not count as a read.
// It returns ctx.Err() if ctx ends first, an error wrapping fs.ErrClosed
// after Close, and the fetch's error if the bytes it needs failed.
func (e *Engine) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return e.read(ctx, p, off, false)
}

// Read is ReadAt for a caller that reads the object as a stream
// (io.Reader's Read at its offset): with Options.StartAtZero, its read at
// offset 0 starts the prefetch window at once.
func (e *Engine) Read(ctx context.Context, p []byte, off int64) (int, error) {
	return e.read(ctx, p, off, true)
}

func (e *Engine) read(ctx context.Context, p []byte, off int64, stream bool) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("prefetch: negative offset %d: %w", off, fs.ErrInvalid)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= e.size {
		return 0, io.EOF
	}
	var eof error
	if rem := e.size - off; int64(len(p)) > rem {
		p, eof = p[:rem], io.EOF
	}
	n := int64(len(p))
	e.asked.Add(n)

	plan, err := e.plan(off, n, stream)
	if err != nil {
		return 0, err
	}
	defer plan.done()
	if err := e.serve(ctx, plan, p, off); err != nil {
		return 0, err
	}
	return len(p), eof
}

// piece is a part of a read: served from a chunk, or fetched directly.
type piece struct {
	off, n int64
	c      *chunk // nil: fetch directly
}

type readPlan struct {
	pieces []piece
	held   []*chunk
}

// done lets go of the chunks the plan holds; it may be called again.
func (rp *readPlan) done() {
	for _, c := range rp.held {
		c.users.Done()
	}
	rp.held = nil
}

// plan observes the read, updates the chunks and prefetches, and returns
// which bytes come from where. Chunks it uses are held until done.
func (e *Engine) plan(off, n int64, stream bool) (*readPlan, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errClosed()
	}
	end := off + n
	d := e.det.observeRead(off, n, stream)
	if e.opts.Disabled {
		d.window = 0
	}
	// Drop what this read can no longer use: everything behind it, and on a
	// break in the run everything it does not touch.
	kept := e.chunks[:0]
	for _, c := range e.chunks {
		if c.end() <= off || (d.reset && c.off >= end) {
			e.dropLocked(c)
			continue
		}
		kept = append(kept, c)
	}
	clear(e.chunks[len(kept):])
	e.chunks = kept

	rp := &readPlan{}
	pos := off
	for _, c := range e.chunks {
		if c.off >= end {
			break
		}
		if c.off > pos {
			rp.pieces = append(rp.pieces, piece{off: pos, n: c.off - pos})
			pos = c.off
		}
		ce := min(c.end(), end)
		c.users.Add(1)
		rp.held = append(rp.held, c)
		rp.pieces = append(rp.pieces, piece{off: pos, n: ce - pos, c: c})
		pos = ce
	}
	if pos < end {
		rp.pieces = append(rp.pieces, piece{off: pos, n: end - pos})
	}

	if d.window > 0 {
		e.topUpLocked(end, d.window)
		if k := len(e.chunks); k > 0 {
			e.spurLocked(e.chunks[k-1])
		}
	}
	return rp, nil
}

// topUpLocked keeps [end, end+window) prefetched: when less than half of
// it is, it fetches the rest in one chunk.
func (e *Engine) topUpLocked(end, window int64) {
	target := e.size
	if t, ok := byterange.End(end, window); ok {
		target = min(t, e.size)
	}
	have := end
	if k := len(e.chunks); k > 0 {
		have = max(have, e.chunks[k-1].end())
	}
	if have >= target || (target-have < window/2 && target < e.size) {
		return
	}
	size := target - have
	if target < e.size {
		// A whole size class: the buffer holds no budget it does not
		// use, and its memory serves the next window of any file.
		size = int64(e.opts.Buffers.Fit(int(size)))
	}
	// Within the budget only: prefetch less rather than wait.
	var buf *directbuf.Buffer
	for size > 0 {
		if b, ok := e.opts.Buffers.TryGet(int(size)); ok {
			buf = b
			break
		}
		if size <= e.opts.MinPartSize {
			return
		}
		size = max(size/2, e.opts.MinPartSize)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	c := &chunk{off: have, buf: buf, cancel: cancel}
	e.chunks = append(e.chunks, c)
	e.prefetched.Add(size)
	for _, pt := range byterange.Split(size, e.opts.Concurrency, e.opts.MinPartSize) {
		c.users.Add(1)
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			defer c.users.Done()
			e.fetchPart(ctx, c, pt.Off, pt.N)
		}()
	}
}

// fetchPart fetches [c.off+off, +n) into the chunk and publishes it: as
// its bytes land when the Fetcher can tell (a read at the part's start
// then waits for its own bytes, not the whole part), else when it ends.
func (e *Engine) fetchPart(ctx context.Context, c *chunk, off, n int64) {
	e.requests.Add(1)
	e.fetched.Add(n)
	dst := c.buf.Bytes()[off : off+n]
	// Only the fetch's goroutines touch these, in turn.
	var committed, arrived int64
	commit := func(k int64) {
		if k > committed {
			c.buf.Commit(off+committed, k-committed)
			committed = k
		}
	}
	var got int
	var err error
	if pf, ok := e.f.(ProgressFetcher); ok {
		got, err = pf.ReadAtProgress(ctx, dst, c.off+off, func(k int64, final bool) {
			if final {
				commit(k)
			} else if k > arrived {
				e.arrivedIn(c, k-arrived)
				arrived = k
			}
		})
	} else {
		got, err = e.f.ReadAt(ctx, dst, c.off+off)
	}
	if err == nil {
		commit(n)
		return
	}
	if ctx.Err() != nil {
		err = errDropped
	}
	// The valid prefix still serves the reads that need only it.
	commit(int64(got))
	c.buf.Fail(off+committed, n-committed, err)
}

// arrivedIn records that n more bytes of the chunk's parts arrived that
// are not readable yet: parts whose bytes are final only at their end (a
// multi-range downloader's, or adopted gRPC bodies). A reader waits for the
// end of such a part, so until then it reads nothing and asks for no next
// window; when the window's parts all end together (they share the link),
// the link would idle for a round trip after them. So once half the chunk
// has arrived, the engine asks for the next window as if the reader had
// read on (spurLocked).
func (e *Engine) arrivedIn(c *chunk, n int64) {
	if c.arrived.Add(n)*2 < int64(c.buf.Len()) || c.spurred.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.spurLocked(c)
}

// spurLocked asks for the window after chunk c once half of c's bytes
// have arrived unreadable (arrivedIn): once per chunk, while c is the last
// chunk and a sequential run is on, and only when c ends within a window
// of the reader, so the engine gets at most two windows ahead of it. A
// read calls it too, for bytes that arrived before the run started.
//
//	reader's end   chunk c, half arrived     asked now
//	     |       [=========|.........)      [------------------)
//	   next               c.end() <= next+w  c.end() ... c.end()+w
func (e *Engine) spurLocked(c *chunk) {
	if c.spurred.Load() || c.arrived.Load()*2 < int64(c.buf.Len()) {
		return
	}
	w, next := e.det.window, e.det.next
	if e.closed || e.opts.Disabled || w == 0 || next < 0 || len(e.chunks) == 0 || e.chunks[len(e.chunks)-1] != c || c.end()-next > w {
		return
	}
	c.spurred.Store(true)
	e.topUpLocked(c.end(), w)
}

// serve fills p (the read at off) from its plan.
func (e *Engine) serve(ctx context.Context, rp *readPlan, p []byte, off int64) error {
	var direct []piece
	for _, pc := range rp.pieces {
		if pc.c == nil {
			direct = append(direct, pc)
			continue
		}
		coff := pc.off - pc.c.off
		if !pc.c.buf.Written(coff, pc.n) {
			e.waits.Add(1)
		}
		err := pc.c.buf.Wait(ctx, coff, pc.n)
		switch {
		case err == nil:
			copy(p[pc.off-off:], pc.c.buf.Bytes()[coff:coff+pc.n])
			pc.c.served.Add(pc.n)
			e.served.Add(pc.n)
		case errors.Is(err, errDropped) && ctx.Err() == nil:
			if e.isClosed() {
				return errClosed()
			}
			direct = append(direct, piece{off: pc.off, n: pc.n})
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			// The prefetch failed: this read gets the error, and the chunk
			// goes so the next read tries again.
			e.forget(pc.c)
			return err
		}
	}
	// Let go of the chunks before fetching the rest, so Close never waits
	// on a direct fetch.
	rp.done()
	if len(direct) == 0 {
		return nil
	}
	return e.fetchDirect(ctx, p, off, direct, true)
}

// ReadDirect fills p with the object's bytes at off, fetched in Concurrency
// parts in parallel straight into p, bypassing the prefetch window and the
// sequential-read detection: for callers that know they read a whole range
// (ReadFile, WriteTo). The range must lie inside the object. It counts in
// Stats as asked and fetched bytes.
func (e *Engine) ReadDirect(ctx context.Context, p []byte, off int64) error {
	if !byterange.Within(off, int64(len(p)), e.size) {
		return fmt.Errorf("prefetch: range of %d bytes at %d outside the %d-byte object: %w", len(p), off, e.size, fs.ErrInvalid)
	}
	if e.isClosed() {
		return errClosed()
	}
	e.asked.Add(int64(len(p)))
	return e.fetchDirect(ctx, p, off, []piece{{off: off, n: int64(len(p))}}, false)
}

// fetchDirect fetches pieces of the read at off into p, each split into
// Concurrency parts fetched in parallel. Close interrupts it. The parts of
// a random read (one a reader waits on, not a whole range of ReadDirect)
// go through a HedgingFetcher's ReadAtHedged.
func (e *Engine) fetchDirect(ctx context.Context, p []byte, off int64, pieces []piece, random bool) error {
	readAt := e.f.ReadAt
	if hf, ok := e.f.(HedgingFetcher); ok && random {
		readAt = hf.ReadAtHedged
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	for _, pc := range pieces {
		for _, pt := range byterange.Split(pc.n, e.opts.Concurrency, e.opts.MinPartSize) {
			g.Go(func() error {
				o := pc.off + pt.Off
				e.requests.Add(1)
				e.fetched.Add(pt.N)
				n, err := readAt(gctx, p[o-off:o-off+pt.N], o)
				if err == nil && int64(n) < pt.N {
					err = io.ErrUnexpectedEOF // a Fetcher owes all bytes or an error
				}
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		if e.ctx.Err() != nil {
			return errClosed()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}
