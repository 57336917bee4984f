// Package testserver runs shaped, fault-injecting fake GCS servers in-process:
// fake-gcs-server over TCP for the HTTP (JSON/XML) path and a hand-written
// google.storage.v2 gRPC server for the BidiReadObject (MultiRangeDownloader)
// path. Both share one object store, so an object written or overwritten
// through one is seen by the other.
//
// It is used by tests, benchmarks and the gcscat demo; it never needs the
// internet or docker.
package testserver

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Shape describes the link between client and server.
// The zero Shape is an unshaped loopback link.
type Shape struct {
	// Latency is added before the first byte of every response: an HTTP
	// request, or a read range on a gRPC stream.
	Latency time.Duration
	// ConnBandwidth caps bytes per second on one connection (HTTP) or one
	// stream (gRPC). 0 means unlimited.
	ConnBandwidth int64
	// AggregateBandwidth caps bytes per second across all connections and
	// streams of the server. 0 means unlimited.
	AggregateBandwidth int64
	// SlowEvery makes every SlowEvery-th data response of the endpoint
	// (an HTTP object GET, a gRPC read range) wait SlowFactor times Latency
	// before its first byte: a tail that is the same in every run
	// (SlowEvery 50 is 2% of requests). The count starts again at each
	// SetShape; Stats.Slowed counts the slow responses. 0 means none.
	SlowEvery int
	// SlowFactor multiplies Latency for the slow responses. Default
	// DefaultSlowFactor.
	SlowFactor int
}

// DefaultSlowFactor is the default Shape.SlowFactor.
const DefaultSlowFactor = 10

// Profiles used by benchmarks and the demo.
var (
	// ProfileStandard is a regional bucket seen from a VM: tens of ms to
	// first byte and a per-stream cap well under the NIC.
	ProfileStandard = Shape{Latency: 30 * time.Millisecond, ConnBandwidth: 100 << 20, AggregateBandwidth: 1000 << 20}
	// ProfileZonal is a Rapid bucket in the same zone: ~2 ms to first byte.
	ProfileZonal = Shape{Latency: 2 * time.Millisecond, ConnBandwidth: 200 << 20, AggregateBandwidth: 1000 << 20}
	// ProfileTail is ProfileStandard with a tail: 2% of data requests
	// (every 50th) wait 10 times as long for their first byte.
	ProfileTail = Shape{Latency: 30 * time.Millisecond, ConnBandwidth: 100 << 20, AggregateBandwidth: 1000 << 20,
		SlowEvery: 50, SlowFactor: 10}
)

// FaultKind names a fault the servers can inject.
type FaultKind int

const (
	// Fault503 answers HTTP 503 (gRPC: UNAVAILABLE) before any byte of the body.
	Fault503 FaultKind = iota + 1
	// FaultReset sends AfterBytes bytes of the body, then breaks the
	// connection (HTTP) or ends the stream with an error (gRPC).
	FaultReset
	// FaultShortBody sends AfterBytes bytes of the body and then ends the
	// response cleanly, short of what it promised.
	FaultShortBody
	// FaultStall sends AfterBytes bytes and then sends nothing more until the
	// client goes away.
	FaultStall
	// FaultFatal fails with an error clients do not retry: HTTP 403 before
	// the body; on gRPC, AfterBytes bytes of the range and then the stream
	// ends with PERMISSION_DENIED, which breaks a MultiRangeDownloader for
	// good (MRD.Error turns non-nil).
	FaultFatal
	// FaultCorrupt (gRPC only) flips one byte of the range at AfterBytes but
	// sends the CRC32C of the true data, as a bad link would.
	FaultCorrupt
	// FaultIgnoreRange (HTTP only) answers a ranged media GET with 200 and
	// the whole object, as a server or proxy that ignores Range does.
	FaultIgnoreRange
	// FaultWrongGeneration (HTTP only) answers with an X-Goog-Generation
	// header one above the object's, as a server that ignored the
	// generation a read asked for would after an overwrite.
	FaultWrongGeneration

	lastGRPCFault = FaultCorrupt
	lastFault     = FaultWrongGeneration
)

// String names the fault kind, as Stats.Faults keys print.
func (k FaultKind) String() string {
	switch k {
	case Fault503:
		return "503"
	case FaultReset:
		return "reset"
	case FaultShortBody:
		return "short-body"
	case FaultStall:
		return "stall"
	case FaultFatal:
		return "fatal"
	case FaultCorrupt:
		return "corrupt"
	case FaultIgnoreRange:
		return "ignore-range"
	case FaultWrongGeneration:
		return "wrong-generation"
	}
	return "unknown"
}

// Fault is a rule for injecting a fault into data responses (object media
// downloads over HTTP, read ranges over gRPC).
type Fault struct {
	Kind FaultKind
	// Object limits the rule to one object name; "" matches every object.
	Object string
	// AfterBytes is how many body bytes are sent before a reset, short body
	// or stall.
	AfterBytes int64
	// Times is how many matching responses get the fault; 0 means the rule
	// stays, applied with Probability.
	Times int
	// Probability applies a rule with Times == 0 to that fraction of
	// matching responses (1 when 0).
	Probability float64
}

// faults holds the rules of a server. Rules are tried in order.
type faults struct {
	mu    sync.Mutex
	rules []*Fault
	rng   *rand.Rand
}

func newFaults(seed uint64) *faults {
	return &faults{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (f *faults) add(r Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &r)
}

func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// next returns the fault to inject into a response for object, if any,
// consuming one use of a counted rule. FaultIgnoreRange rules are left to
// take, which the HTTP endpoint calls before the response is made.
func (f *faults) next(object string) (Fault, bool) {
	return f.pick(object, func(k FaultKind) bool { return k != FaultIgnoreRange })
}

// take is next for the rules of one kind only.
func (f *faults) take(object string, kind FaultKind) bool {
	_, ok := f.pick(object, func(k FaultKind) bool { return k == kind })
	return ok
}

func (f *faults) pick(object string, match func(FaultKind) bool) (Fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if (r.Object != "" && r.Object != object) || !match(r.Kind) {
			continue
		}
		if r.Times > 0 {
			r.Times--
			if r.Times == 0 {
				f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
			}
			return *r, true
		}
		p := r.Probability
		if p == 0 {
			p = 1
		}
		if f.rng.Float64() < p {
			return *r, true
		}
	}
	return Fault{}, false
}

// Stats is a snapshot of a server's counters.
type Stats struct {
	// Requests counts data requests: HTTP media downloads, gRPC read ranges
	// and gRPC GetObject calls that return data.
	Requests int64
	// MetadataRequests counts requests that return no object data.
	MetadataRequests int64
	// Streams counts gRPC BidiReadObject streams opened (HTTP: connections
	// accepted).
	Streams int64
	// Connections counts the distinct client connections (by remote
	// address) that carried a gRPC stream or call, or (HTTP) were accepted:
	// how many channels a client spread its streams over.
	Connections int64
	// MaxInFlight is the most HTTP requests (data and metadata) being
	// served at once, latency included: two requests a client sent
	// together overlap here, two it sent one after the other do not
	// (given a latency longer than the client's gap). 0 on gRPC.
	MaxInFlight int64
	// InFlight is the HTTP requests being served now: a test waits for it
	// to reach 0 before it resets the counters, so bytes of an earlier
	// client's cancelled responses are not counted as the next one's.
	InFlight int64
	// ActiveStreams and MaxActiveStreams are streams (HTTP: connections)
	// open now and at the most.
	ActiveStreams, MaxActiveStreams int64
	// Bytes counts object bytes sent.
	Bytes int64
	// Slowed counts the data responses Shape.SlowEvery made slow.
	Slowed int64
	// Faults counts faults injected, by kind.
	Faults map[FaultKind]int64
}

// FaultsInjected is the total over all kinds.
func (s Stats) FaultsInjected() int64 {
	var n int64
	for _, v := range s.Faults {
		n += v
	}
	return n
}

type counters struct {
	requests, metadata, streams, active, maxActive, bytes, slowed atomic.Int64
	faults                                                        [lastFault + 1]atomic.Int64

	inFlight, maxInFlight atomic.Int64

	peersMu sync.Mutex
	peers   map[string]struct{} // remote addresses of client connections seen
}

func (c *counters) requestStarted() { raiseTo(&c.maxInFlight, c.inFlight.Add(1)) }

func (c *counters) requestEnded() { c.inFlight.Add(-1) }

// raiseTo makes m at least n.
func raiseTo(m *atomic.Int64, n int64) {
	for {
		old := m.Load()
		if n <= old || m.CompareAndSwap(old, n) {
			return
		}
	}
}

// peerSeen counts a client connection by its remote address.
func (c *counters) peerSeen(addr string) {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	if c.peers == nil {
		c.peers = map[string]struct{}{}
	}
	c.peers[addr] = struct{}{}
}

func (c *counters) streamOpened() {
	c.streams.Add(1)
	n := c.active.Add(1)
	for {
		m := c.maxActive.Load()
		if n <= m || c.maxActive.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *counters) streamClosed() { c.active.Add(-1) }

func (c *counters) snapshot() Stats {
	s := Stats{
		Requests:         c.requests.Load(),
		MetadataRequests: c.metadata.Load(),
		Streams:          c.streams.Load(),
		ActiveStreams:    c.active.Load(),
		MaxActiveStreams: c.maxActive.Load(),
		Bytes:            c.bytes.Load(),
		Slowed:           c.slowed.Load(),
		MaxInFlight:      c.maxInFlight.Load(),
		InFlight:         c.inFlight.Load(),
		Faults:           map[FaultKind]int64{},
	}
	c.peersMu.Lock()
	s.Connections = int64(len(c.peers))
	c.peersMu.Unlock()
	for k := Fault503; k <= lastFault; k++ {
		if v := c.faults[k].Load(); v > 0 {
			s.Faults[k] = v
		}
	}
	return s
}

func (c *counters) reset() {
	for _, v := range []*atomic.Int64{&c.requests, &c.metadata, &c.streams, &c.maxActive, &c.bytes, &c.slowed} {
		v.Store(0)
	}
	c.maxActive.Store(c.active.Load())
	c.maxInFlight.Store(c.inFlight.Load())
	c.peersMu.Lock()
	clear(c.peers)
	c.peersMu.Unlock()
	for i := range c.faults {
		c.faults[i].Store(0)
	}
}

// chunkSize is the largest piece of body written at once; limiter bursts are
// at least this big so WaitN never fails for size.
const chunkSize = 64 << 10

// link applies a Shape. It is safe for concurrent use; SetShape swaps it
// atomically for new streams.
type link struct {
	shape     atomic.Pointer[Shape]
	aggregate atomic.Pointer[rate.Limiter] // nil when unlimited
	dataSeq   atomic.Int64                 // data responses since the shape was set
}

func (l *link) set(s Shape) {
	l.dataSeq.Store(0)
	l.shape.Store(&s)
	if s.AggregateBandwidth > 0 {
		l.aggregate.Store(newLimiter(s.AggregateBandwidth))
	} else {
		l.aggregate.Store(nil)
	}
}

// Burst is how much data, in time at its rate, a token bucket of the link
// holds: a sender that waits a little (a timer, a busy CPU) is not held
// below the rate. A bucket starts empty but refills while its link idles,
// up to Burst: the aggregate one while the reads wait out their first
// byte, so up to min(Burst, Latency) x AggregateBandwidth of a transfer
// can arrive at once after it (a shorter Burst, 2 ms, held a single
// HTTP stream at 81% of its rate on a 2-CPU machine).
const Burst = 20 * time.Millisecond

// newLimiter returns a token bucket of bps bytes a second that holds up to
// Burst of data and starts empty: a link has no bytes in hand when a
// connection opens or a shape is set.
func newLimiter(bps int64) *rate.Limiter {
	burst := int(bps * int64(Burst) / int64(time.Second))
	if burst < chunkSize {
		burst = chunkSize
	}
	l := rate.NewLimiter(rate.Limit(bps), burst)
	l.AllowN(time.Now(), burst)
	return l
}

// stream is the shaping state of one connection or gRPC stream.
type stream struct {
	l    *link
	conn *rate.Limiter // nil when unlimited
}

func (l *link) newStream() *stream {
	s := l.shape.Load()
	st := &stream{l: l}
	if s.ConnBandwidth > 0 {
		st.conn = newLimiter(s.ConnBandwidth)
	}
	return st
}

// firstByte waits out the latency before the first byte of a response
// that carries no object data.
func (st *stream) firstByte(ctx context.Context) error {
	return waitLatency(ctx, st.l.shape.Load().Latency)
}

// dataFirstByte waits out the latency, counted from asked (when the
// request reached the server), before the first byte of a data response:
// SlowFactor times as long for every SlowEvery-th one, which is counted in
// c. A read range sent in a gRPC stream's first message was asked when the
// stream opened, so its latency and the open's run at once, as one round
// trip does.
func (st *stream) dataFirstByte(ctx context.Context, c *counters, asked time.Time) error {
	s := st.l.shape.Load()
	d := s.Latency
	if s.SlowEvery > 0 && st.l.dataSeq.Add(1)%int64(s.SlowEvery) == 0 {
		c.slowed.Add(1)
		d = slowed(d, s.SlowFactor)
	}
	return waitLatency(ctx, d-time.Since(asked))
}

// slowed is d times factor (DefaultSlowFactor when not positive),
// saturating instead of overflowing.
func slowed(d time.Duration, factor int) time.Duration {
	if factor <= 0 {
		factor = DefaultSlowFactor
	}
	if d > 0 && d > math.MaxInt64/time.Duration(factor) {
		return math.MaxInt64
	}
	return d * time.Duration(factor)
}

func waitLatency(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send waits until n (<= chunkSize) more bytes may be sent.
func (st *stream) send(ctx context.Context, n int) error {
	if st.conn != nil {
		if err := st.conn.WaitN(ctx, n); err != nil {
			return err
		}
	}
	if agg := st.l.aggregate.Load(); agg != nil {
		if err := agg.WaitN(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Endpoint is one served protocol (HTTP or gRPC) of a Server: its link
// shape, its fault rules and its counters. Its methods are safe for
// concurrent use.
type Endpoint struct {
	link   link
	faults *faults
	c      counters
}

func newEndpoint(s Shape, seed uint64) *Endpoint {
	e := &Endpoint{faults: newFaults(seed)}
	e.link.set(s)
	return e
}

// SetShape changes the link shape for responses started from now on. The
// aggregate bucket starts again, empty, and the count of data responses
// that SlowEvery picks from starts again at zero: setting the same shape
// before each measured run makes the runs alike.
func (e *Endpoint) SetShape(s Shape) { e.link.set(s) }

// AddFault adds a fault rule; rules are tried in the order added.
func (e *Endpoint) AddFault(f Fault) { e.faults.add(f) }

// ClearFaults removes every fault rule.
func (e *Endpoint) ClearFaults() { e.faults.clear() }

// Stats returns a snapshot of the counters.
func (e *Endpoint) Stats() Stats { return e.c.snapshot() }

// ResetStats sets the counters to zero (MaxActiveStreams to the streams
// open now).
func (e *Endpoint) ResetStats() { e.c.reset() }
