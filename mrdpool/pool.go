package mrdpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonalread/zonalread/internal/defaults"
)

var (
	// ErrRange is wrapped by errors for a range that does not lie inside the
	// object. Such a range is rejected before it reaches a downloader.
	ErrRange = errors.New("mrdpool: range outside the object")
	// ErrObjectChanged is wrapped by errors for a read of an object whose
	// pinned generation was overwritten or deleted.
	ErrObjectChanged = errors.New("mrdpool: object changed since it was opened")
	// ErrShortRange is wrapped by errors for a range that ended before all
	// its bytes arrived, after the retry budget.
	ErrShortRange = errors.New("mrdpool: range ended early")
)

// ObjectInfo is what the pool pins at the first open.
type ObjectInfo struct {
	Size       int64
	Generation int64 // 0 when the backend has no generations
	ModTime    time.Time

	// file is the stat of the object's file on a local-disk bucket
	// (fileblob), nil elsewhere. Local file systems keep modification
	// times at clock-tick granularity, so an overwrite of the same size
	// within one tick keeps size and time: a range is checked to read the
	// same file (os.SameFile: the writer replaces the file by a rename).
	file os.FileInfo
}

// Backend opens downloaders for one object.
type Backend interface {
	// Open opens a new downloader. It returns the object's info as that
	// downloader sees it; the pool pins the first one and fails later opens
	// that see another generation. An error for a missing object must wrap
	// fs.ErrNotExist.
	Open(ctx context.Context) (Downloader, ObjectInfo, error)
	// Shareable reports whether one downloader carries many ranges at once.
	Shareable() bool
}

// Downloader carries ranges of one object.
type Downloader interface {
	// Add starts copying [off, off+n) of the object into w and returns at
	// once. It must call done exactly once, from any goroutine, when the
	// range has ended, and must not call w after that. The range has been
	// validated against the object's size. ctx may cancel the range;
	// backends that cannot cancel a single range may ignore it.
	Add(ctx context.Context, w io.Writer, off, n int64, done func(error))
	// Err returns a non-nil error once the downloader is permanently broken.
	Err() error
	// Close releases the downloader. Ranges still in flight end with an
	// error. It must not be called from a done callback.
	Close() error
}

// The defaults of Options, applied by its normalize method.
const (
	// DefaultPoolSize is the default Options.PoolSize. A real MRD carries
	// many ranges per stream, so a few streams go far; gcsfs, which splits
	// reads into parts over either backend, sets its own (see
	// gcsfs.DefaultPoolSize).
	DefaultPoolSize = 4
	// DefaultRetries is the default Options.Retries.
	DefaultRetries = 3
	// DefaultRetryBackoff is the default Options.RetryBackoff.
	DefaultRetryBackoff = 10 * time.Millisecond
	// DefaultStallTimeout is how long a range may go without one byte of
	// progress before it fails with ErrStalled: the default
	// Options.StallTimeout.
	DefaultStallTimeout = 30 * time.Second
)

// Options configure a Pool. A nil *Options means the defaults; zero fields
// take their defaults, normalised in one place (normalize).
type Options struct {
	// PoolSize is the most downloaders open at once. Default
	// DefaultPoolSize.
	PoolSize int
	// Retries is how many times ReadAt resumes a range that failed with a
	// transient error, from the first byte it has not delivered yet.
	// Default DefaultRetries; negative means none.
	Retries int
	// RetryBackoff is the wait before the first retry, doubled for each
	// further one. Default DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Info, when set, is the object's pinned info, known from an earlier
	// stat; the pool then checks every open against it.
	Info *ObjectInfo
	// StallTimeout bounds every wait on the server: a range that receives
	// no byte for this long, or an open that does not answer, fails with
	// an error wrapping ErrStalled, and its downloader is replaced. Retries
	// of a range stop once no byte has arrived for this long. Default
	// DefaultStallTimeout; negative means no bound.
	StallTimeout time.Duration
	// Logger receives retries, stalls, replaced downloaders and give-ups
	// (Debug and Warn), with the object's name, offset and attempt. nil
	// means silent.
	Logger *slog.Logger
	// Object names the object in log records and errors.
	Object string
	// Observe, when set, is told how every range that completed in one
	// attempt went. gcsfs sizes its first prefetch window from these (the
	// link's bandwidth-delay product). It is called on the reading
	// goroutine and must be quick.
	Observe func(RangeTiming)
	// Warm is how many downloaders the pool opens at once when it opens
	// its first (at most PoolSize): the others in the background, so that
	// the parallel parts of a first prefetch window find them open
	// instead of each paying an open's round trip after the first. Their
	// failures are dropped (a later open reports its own). Default 0: one
	// at a time, as ranges need them.
	Warm int
	// HedgeDelay, when set, turns hedging on for ReadAtHedged: it is
	// asked once per read, once the read's first request has started, how
	// long the read may go without its first byte before a second request
	// for it is issued (the caller's estimate of the link's p95 time to
	// first byte), and says false when the read must not be hedged (the
	// estimate is not ready yet). It is called on the reading goroutine
	// and must be quick. nil means ReadAtHedged is ReadAt.
	HedgeDelay func() (time.Duration, bool)
}

func (o *Options) normalize() Options {
	r := defaults.Of(o)
	r.PoolSize = defaults.Positive(r.PoolSize, DefaultPoolSize)
	r.Retries = max(cmp.Or(r.Retries, DefaultRetries), 0) // negative: none
	r.RetryBackoff = defaults.Positive(r.RetryBackoff, DefaultRetryBackoff)
	r.StallTimeout = cmp.Or(r.StallTimeout, DefaultStallTimeout)
	r.Warm = min(max(r.Warm, 0), r.PoolSize)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// RangeTiming is how one range went, for Options.Observe.
type RangeTiming struct {
	// TTFB is the time from the request to the first byte in.
	TTFB time.Duration
	// Bytes is the range's size.
	Bytes int64
	// Transfer is how long its bytes took after the first.
	Transfer time.Duration
	// Sharing is how many ranges its downloader carried once it was
	// added, itself included (1: it had the downloader to itself). The
	// ranges of a shared downloader share its stream's rate, so
	// Bytes*Sharing/Transfer estimates what one range alone on a stream
	// gets, where Bytes/Transfer would count a busy stream as a slow link.
	Sharing int
}

// Stats are a pool's counters.
type Stats struct {
	Opened   int64 // downloaders opened
	Replaced int64 // broken downloaders closed and dropped
	Shared   int64 // acquires that shared a busy downloader
	Waits    int64 // acquires that had to wait
	Ranges   int64 // ranges added to downloaders
	Retries  int64 // ranges resumed after a transient error
	Bytes    int64 // bytes delivered by ReadAt
	// Hedges counts second requests issued by ReadAtHedged for a read
	// whose first byte was late; HedgeWins, those of them that answered
	// first (the first request was then cancelled); HedgeBytes, the bytes
	// they asked for (asked twice: the server sends the loser's bytes up to
	// its cancellation).
	Hedges, HedgeWins, HedgeBytes int64
}

// Pool is a lazily opened, lock-guarded pool of downloaders for one object.
// It is safe for concurrent use.
type Pool struct {
	backend Backend
	opts    Options

	mu        sync.Mutex
	closed    bool
	closing   chan struct{} // closed when Close starts
	closeDone chan struct{} // closed when the first Close has finished
	closeErr  error
	info      ObjectInfo
	pinned    bool
	all       []*entry // open downloaders
	free      []*entry // open downloaders nobody owns
	opening   int      // opens in progress, counted against PoolSize
	rr        int      // where sharing starts looking, so ties spread
	changed   chan struct{}
	warmed    bool               // the Warm opens were started
	ctx       context.Context    // ends at Close: bounds the Warm opens
	cancel    context.CancelFunc // ends ctx

	opened, replaced, shared, waits, ranges, retries, bytes atomic.Int64
	hedges, hedgeWins, hedgeBytes                           atomic.Int64
	progress                                                atomic.Int64 // unix nanos of the last byte any range got
}

type entry struct {
	d     Downloader
	users int           // leases out on it: its owner and any sharers
	gone  chan struct{} // closed when the pool drops it (broken, stalled, closed)
	// progress is when it last delivered a byte to any range (unix nanos).
	progress atomic.Int64
}

// broken reports whether the downloader must not be handed out again.
func (e *entry) broken() bool {
	select {
	case <-e.gone:
		return true
	default:
	}
	return e.d.Err() != nil
}

// New returns a pool over backend. It does no I/O.
func New(backend Backend, opts *Options) *Pool {
	o := opts.normalize()
	p := &Pool{backend: backend, opts: o, changed: make(chan struct{}), closing: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if o.Info != nil {
		p.info, p.pinned = *o.Info, true
	}
	return p
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	return Stats{
		Opened: p.opened.Load(), Replaced: p.replaced.Load(), Shared: p.shared.Load(),
		Waits: p.waits.Load(), Ranges: p.ranges.Load(), Retries: p.retries.Load(), Bytes: p.bytes.Load(),
		Hedges: p.hedges.Load(), HedgeWins: p.hedgeWins.Load(), HedgeBytes: p.hedgeBytes.Load(),
	}
}

// lease is a downloader handed out by acquire. Release it exactly once.
type lease struct {
	p     *Pool
	e     *entry
	owner bool
	// sharing is how many leases its downloader carried once this one
	// was added: the ranges that share its stream's rate.
	sharing  int
	released atomic.Bool
}

// Downloader returns the leased downloader.
func (l *lease) Downloader() Downloader { return l.e.d }

// Release gives the downloader back. The owner's release puts it back in
// the free queue (or closes it if it broke); a sharer's only drops its use.
// Release panics if called twice.
func (l *lease) Release() {
	if l.released.Swap(true) {
		panic("mrdpool: lease released twice")
	}
	l.p.release(l)
}

func errClosed() error { return fmt.Errorf("mrdpool: pool closed: %w", fs.ErrClosed) }

// Info returns the object's pinned info, opening the first downloader if
// nothing is known yet. Concurrent first callers share one open: while any
// open is in flight, Info waits for it rather than open another.
func (p *Pool) Info(ctx context.Context) (ObjectInfo, error) {
	for {
		p.mu.Lock()
		switch {
		case p.pinned:
			info := p.info
			p.mu.Unlock()
			return info, nil
		case p.closed:
			p.mu.Unlock()
			return ObjectInfo{}, errClosed()
		case p.opening == 0:
			p.opening++
			p.warmLocked()
			p.mu.Unlock()
			l, err := p.open(ctx)
			if err != nil {
				return ObjectInfo{}, err
			}
			l.Release()
			continue
		}
		ch := p.changed
		p.mu.Unlock()
		p.waits.Add(1)
		select {
		case <-ch:
		case <-ctx.Done():
			return ObjectInfo{}, ctx.Err()
		}
	}
}

// acquire returns a downloader: a free one, a newly opened one while the
// pool is under PoolSize, or, when all are busy, the least-loaded busy one
// shared if the backend can share (once the opens in flight have come in,
// unless it carries no more than its part), else the next one released. It
// returns ctx.Err() if ctx ends first and an error wrapping fs.ErrClosed
// after Close.
func (p *Pool) acquire(ctx context.Context) (*lease, error) { return p.acquireFor(ctx, false) }

// acquireFor is acquire; with share, a shareable backend's busy downloader
// is shared before a new one is opened.
func (p *Pool) acquireFor(ctx context.Context, share bool) (*lease, error) {
	waited := false
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errClosed()
		}
		var broken []*entry
		for len(p.free) > 0 {
			e := p.free[len(p.free)-1]
			p.free = p.free[:len(p.free)-1]
			if e.broken() {
				p.dropLocked(e)
				broken = append(broken, e)
				continue
			}
			e.users++
			p.mu.Unlock()
			p.closeBroken(broken)
			return &lease{p: p, e: e, owner: true, sharing: 1}, nil
		}
		// The first open is serialized: while it runs, nobody else opens,
		// so two concurrent first callers open one downloader.
		firstInFlight := len(p.all) == 0 && p.opening > 0
		canShare := !firstInFlight && p.backend.Shareable()
		if canShare && share {
			if l := p.shareLocked(); l != nil {
				p.mu.Unlock()
				p.closeBroken(broken)
				return l, nil
			}
		}
		if !firstInFlight && len(p.all)+p.opening < p.opts.PoolSize {
			p.opening++
			p.warmLocked()
			p.mu.Unlock()
			p.closeBroken(broken)
			return p.open(ctx)
		}
		// While opens are in flight, share only a downloader carrying no
		// more than its part of the leases: the callers that find the
		// pool full just as it fills (a burst of ranges at a file's
		// first read) would otherwise all pile onto the one downloader
		// open so far and wait on its stream alone.
		if canShare && p.fairShareLocked() {
			if l := p.shareLocked(); l != nil {
				p.mu.Unlock()
				p.closeBroken(broken)
				return l, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		p.closeBroken(broken)
		if !waited {
			waited = true
			p.waits.Add(1)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// warmLocked starts the Warm opens with the pool's first open (counted in
// p.opening by the caller). It does so once.
func (p *Pool) warmLocked() {
	if p.warmed || len(p.all) > 0 {
		return
	}
	p.warmed = true
	p.openUpToLocked(p.opts.Warm)
}

// Warm starts background opens until n downloaders (at most PoolSize) are
// open or opening, and returns at once: for a caller that learns only from
// the first open (the object's size) that the object will be read over
// many streams, so that its first parallel read finds them open instead of
// paying an open's round trip. Failed opens are dropped, as Options.Warm's
// are. On a closed pool it does nothing.
func (p *Pool) Warm(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.openUpToLocked(min(n, p.opts.PoolSize))
	}
}

// openUpToLocked starts background opens until n downloaders are open or
// opening; each is released to the free queue, or ends with the pool.
func (p *Pool) openUpToLocked(n int) {
	for len(p.all)+p.opening < n {
		p.opening++
		go func() {
			l, err := p.open(p.ctx)
			if err != nil {
				p.opts.Logger.Debug("mrdpool: warm open failed", "object", p.opts.Object, "err", err)
				return
			}
			l.Release() // to the free queue
		}()
	}
}

// shareLocked leases the healthy open downloader carrying the fewest
// leases (the first such from a round-robin cursor, so ties spread) to a
// sharer, or returns nil if none is healthy.
func (p *Pool) shareLocked() *lease {
	var best *entry
	for i := range len(p.all) {
		e := p.all[(p.rr+i)%len(p.all)]
		if !e.broken() && (best == nil || e.users < best.users) {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	p.rr++
	best.users++
	p.shared.Add(1)
	return &lease{p: p, e: best, sharing: best.users}
}

// fairShareLocked reports whether the least-loaded open downloader carries
// fewer than its share of the leases once one more is added, counting the
// downloaders still opening as able to carry theirs: with no open in
// flight it is always true.
func (p *Pool) fairShareLocked() bool {
	if p.opening == 0 {
		return true
	}
	least, leases := -1, 0
	for _, e := range p.all {
		leases += e.users
		if least < 0 || e.users < least {
			least = e.users
		}
	}
	return least >= 0 && least*(len(p.all)+p.opening) < leases+1
}

// open opens a downloader for a caller counted in p.opening. The open is
// bounded by the stall timeout.
func (p *Pool) open(ctx context.Context) (*lease, error) {
	octx, cancel := WithStallTimeout(ctx, p.opts.StallTimeout)
	d, info, err := p.backend.Open(octx)
	err = WrapStalled(octx, err, "open "+p.opts.Object)
	cancel()
	p.mu.Lock()
	p.opening--
	p.notifyLocked()
	if err != nil {
		p.mu.Unlock()
		if errors.Is(err, ErrStalled) {
			p.opts.Logger.Warn("mrdpool: open stalled", "object", p.opts.Object, "err", err)
		}
		return nil, err
	}
	if p.closed {
		p.mu.Unlock()
		d.Close()
		return nil, errClosed()
	}
	if info.Size < 0 {
		// Untrusted: every range check assumes a size >= 0.
		p.mu.Unlock()
		d.Close()
		return nil, errBadSize(info.Size)
	}
	if p.pinned && (info.Size != p.info.Size || (p.info.Generation != 0 && info.Generation != 0 && info.Generation != p.info.Generation)) {
		// Another generation, or a pinned size this generation does not
		// have (an info the caller knew wrong): reads of it would be cut
		// short or run past its end.
		pinned := p.info
		p.mu.Unlock()
		d.Close()
		return nil, fmt.Errorf("%w: opened generation %d of %d bytes, pinned generation %d of %d bytes", ErrObjectChanged, info.Generation, info.Size, pinned.Generation, pinned.Size)
	}
	if !p.pinned {
		p.info, p.pinned = info, true
	}
	e := &entry{d: d, users: 1, gone: make(chan struct{})}
	p.all = append(p.all, e)
	p.mu.Unlock()
	p.opened.Add(1)
	return &lease{p: p, e: e, owner: true, sharing: 1}, nil
}

func (p *Pool) release(l *lease) {
	p.mu.Lock()
	l.e.users--
	var broken []*entry
	if l.owner && !p.closed && p.contains(l.e) {
		if l.e.broken() {
			p.dropLocked(l.e)
			broken = append(broken, l.e)
		} else {
			p.free = append(p.free, l.e)
		}
	}
	p.notifyLocked()
	p.mu.Unlock()
	p.closeBroken(broken)
}

func (p *Pool) contains(e *entry) bool {
	for _, x := range p.all {
		if x == e {
			return true
		}
	}
	return false
}

// dropLocked removes a broken downloader from the pool; the caller closes it
// after letting go of the lock. Ranges still waiting on it see e.gone.
func (p *Pool) dropLocked(e *entry) {
	if !p.contains(e) {
		return
	}
	for i, x := range p.all {
		if x == e {
			p.all = append(p.all[:i], p.all[i+1:]...)
			break
		}
	}
	for i, x := range p.free {
		if x == e {
			p.free = append(p.free[:i], p.free[i+1:]...)
			break
		}
	}
	closeGone(e)
	p.replaced.Add(1)
	p.notifyLocked()
	p.opts.Logger.Warn("mrdpool: downloader replaced", "object", p.opts.Object, "err", e.d.Err())
}

func closeGone(e *entry) {
	select {
	case <-e.gone:
	default:
		close(e.gone)
	}
}

// dropStalled drops the downloader of a range that stalled and closes it:
// the next range opens a fresh one.
func (p *Pool) dropStalled(e *entry) {
	p.mu.Lock()
	was := p.contains(e)
	p.dropLocked(e)
	p.mu.Unlock()
	if was {
		e.d.Close()
	}
}

// closeBroken closes dropped downloaders. Their errors were already seen by
// the ranges that broke them, so they are not kept.
func (p *Pool) closeBroken(es []*entry) {
	for _, e := range es {
		e.d.Close()
	}
}

func (p *Pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Close closes every downloader and returns their errors joined. Ranges in
// flight end with errors; later Info and ReadAt calls fail with an error
// wrapping fs.ErrClosed. Close is idempotent: later calls return the same
// error.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		done := p.closeDone
		p.mu.Unlock()
		<-done
		return p.closeErr
	}
	p.closed = true
	p.cancel() // Warm opens in flight end
	close(p.closing)
	p.closeDone = make(chan struct{})
	all := p.all
	p.all, p.free = nil, nil
	for _, e := range all {
		closeGone(e)
	}
	p.notifyLocked()
	p.mu.Unlock()
	var errs []error
	for _, e := range all {
		if err := e.d.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.closeErr = errors.Join(errs...)
	close(p.closeDone) // publishes closeErr to later callers
	return p.closeErr
}
