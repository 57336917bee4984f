package gcsfs

import (
	"cmp"
	"log/slog"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/zonalread/zonalread/directbuf"
	"github.com/zonalread/zonalread/internal/defaults"
	"github.com/zonalread/zonalread/mrdpool"
	"github.com/zonalread/zonalread/prefetch"
)

// The defaults of Options, applied by its normalize method. Those that
// gcsfs only passes down are the lower packages' own constants, so each
// value lives in one place.
const (
	// DefaultPoolSize is the default Options.PoolSize. It is
	// DefaultConcurrency, not mrdpool.DefaultPoolSize: a read is split into
	// Concurrency parts, and on the range-reader backend (any bucket that
	// is not zonal) a downloader carries one part at a time, so fewer
	// downloaders than parts would make parts wait for each other.
	DefaultPoolSize = DefaultConcurrency
	// DefaultConcurrency is the default Options.Concurrency.
	DefaultConcurrency = prefetch.DefaultConcurrency
	// DefaultBlockSize is the default Options.BlockSize.
	DefaultBlockSize = prefetch.DefaultBlockSize
	// DefaultMaxPrefetch is the default Options.MaxPrefetch.
	DefaultMaxPrefetch = prefetch.DefaultMaxPrefetch
	// DefaultMinPartSize is the default Options.MinPartSize.
	DefaultMinPartSize = prefetch.DefaultMinPartSize
	// DefaultPrefetchBudget is the default Options.PrefetchBudget (raised
	// to 2*MaxPrefetch when that is larger).
	DefaultPrefetchBudget = 256 << 20
	// DefaultCoalesceGap is the default Options.CoalesceGap.
	DefaultCoalesceGap = 128 << 10
	// DefaultRetries is the default Options.Retries.
	DefaultRetries = mrdpool.DefaultRetries
	// DefaultStallTimeout is the default Options.StallTimeout.
	DefaultStallTimeout = mrdpool.DefaultStallTimeout
	// DefaultHedgeQuantile is the default Options.HedgeQuantile: the p95,
	// so about 1 random read in 20 sends a second request on any link,
	// tail or not.
	DefaultHedgeQuantile = 0.95
)

// Hedged reads (Options.Hedge).
const (
	// HedgeMinSamples is how many times to first byte the FS must have
	// seen before it hedges: with fewer, the quantile is a guess.
	HedgeMinSamples = 16
	// HedgeMinDelay is the shortest wait before a hedge: a read that
	// answers within a millisecond (a local or in-memory bucket) gains
	// nothing from a second request.
	HedgeMinDelay = time.Millisecond
	// hedgeSamples is how many recent times to first byte the quantile is
	// computed over: enough for a p95 that is not one outlier, few
	// enough to follow a link that changes.
	hedgeSamples = 128
)

// Zonal says whether a bucket is read through gRPC multi-range downloaders.
type Zonal int

const (
	// ZonalAuto asks the bucket: zonal when its LocationType is "zone".
	ZonalAuto Zonal = iota
	// ZonalOn forces multi-range downloaders over gRPC.
	ZonalOn
	// ZonalOff forces ranged reads through the gocloud bucket.
	ZonalOff
)

// String returns "auto", "on" or "off".
func (z Zonal) String() string {
	switch z {
	case ZonalOn:
		return "on"
	case ZonalOff:
		return "off"
	}
	return "auto"
}

// ParseZonal parses "auto", "on"/"true" or "off"/"false".
func ParseZonal(s string) (Zonal, bool) {
	switch s {
	case "", "auto":
		return ZonalAuto, true
	case "on", "true", "1":
		return ZonalOn, true
	case "off", "false", "0":
		return ZonalOff, true
	}
	return ZonalAuto, false
}

// Options configure an FS. A nil *Options means the defaults; zero fields
// take their defaults, normalised in one place (normalize).
type Options struct {
	// Zonal picks the read backend. Default ZonalAuto. A "zonal" query
	// parameter in the URL given to Open overrides it.
	Zonal Zonal
	// BucketName is the GCS bucket's name when the FS is made with New over
	// a bucket the caller opened; Open sets it from the URL. It is needed
	// for zonal reads and for ZonalAuto's lookup.
	BucketName string
	// GRPCClient is a gRPC storage client made with
	// storage.WithGRPCBidiReads(), used for zonal reads. If nil and the
	// bucket is zonal, one is dialled with ClientOptions over a pool of
	// PoolSize channels (option.WithGRPCConnectionPool; an option in
	// ClientOptions overrides it) and closed by Close. The FS never closes
	// a client it was given.
	GRPCClient *storage.Client
	// ClientOptions are used when the FS dials a gRPC client itself.
	ClientOptions []option.ClientOption

	// PoolSize is how many downloaders (streams, connections) one open
	// file may use at once. Default DefaultPoolSize (8).
	PoolSize int
	// Concurrency is how many ranges one logical read (a prefetch window,
	// ReadFile, WriteTo) is split into. Default DefaultConcurrency (8).
	Concurrency int
	// BlockSize is the smallest prefetch window. Default DefaultBlockSize
	// (1 MiB).
	BlockSize int64
	// MaxPrefetch is the largest prefetch window. Default
	// DefaultMaxPrefetch (64 MiB); never under BlockSize.
	MaxPrefetch int64
	// MinPartSize is the smallest range a read is split into. Default
	// DefaultMinPartSize (1 MiB).
	MinPartSize int64
	// PrefetchBudget caps the bytes of prefetched data held by all files of
	// the FS together, WriteTo's windows included (a WriteTo that finds it
	// held by prefetched windows makes the files let go of them rather
	// than wait for reads that may never come). Default
	// DefaultPrefetchBudget (256 MiB), at least 2*MaxPrefetch.
	PrefetchBudget int64
	// CoalesceGap is the largest gap between two ranges of one ReadRanges
	// call that are still fetched as one range (the gap's bytes are
	// fetched and dropped: cheaper than a round trip). Default
	// DefaultCoalesceGap (128 KiB); negative means ranges are merged only
	// when they touch or overlap.
	CoalesceGap int64
	// DisablePrefetch makes every read fetch exactly its bytes.
	DisablePrefetch bool
	// Retries is how many times a failed range is resumed. Default
	// DefaultRetries (3); negative means none.
	Retries int
	// StallTimeout bounds every wait on the server. A range that receives
	// no byte for this long fails with an error wrapping ErrStalled and its
	// downloader is replaced; an open, a stat or a listing page that gets
	// no answer for this long fails the same way; retries of a range stop
	// once no byte has arrived for this long; the storage client's own
	// retries (of a refused connection, of UNAVAILABLE) are bounded to half
	// of it on the clients and object handles the FS uses. A context
	// deadline shorter than it still wins. Default DefaultStallTimeout
	// (30 s); negative means no bound (only contexts end waits).
	StallTimeout time.Duration
	// Logger receives retries (Debug), stalls, replaced downloaders and
	// reads that give up (Warn), with the object's name, offset and
	// attempt. nil means silent.
	Logger *slog.Logger
	// Hedge turns hedged random reads on: a random read (one not served
	// by a prefetch window) that has seen no byte after the HedgeQuantile
	// of this FS's recent times to first byte issues a second, identical
	// request and takes whichever answers first, cancelling the other. A
	// tail of slow requests (a few in a hundred taking ten times as long)
	// then costs a random read about two round trips instead of ten.
	// Prefetch windows, ReadFile, WriteTo and ReadRanges are never hedged:
	// a window is fetched ahead of the reader, and hedging a large range
	// could double its bytes. Stats.Hedges counts the second requests and
	// Stats.Fetched their bytes. The times to first byte are those of every
	// request of the FS, prefetch parts included: parts queued behind a
	// busy link raise the quantile, and hedges get rarer while it is busy.
	//
	// It is off by default because a quantile fires on every link: at the
	// p95 about 1 random read in 20 sends a second request even where no
	// request is ever slow. Over ranged HTTP GETs on a link with tens of
	// ms to first byte, the loser is cancelled before the server sends a
	// byte, but on a fast link (local disk, a loaded machine) its bytes
	// are often sent, and a multi-range downloader cannot cancel a range
	// at all: every hedge there costs the loser's bytes. Turn it on for a
	// link with a tail.
	Hedge bool
	// HedgeQuantile is the quantile of recent times to first byte after
	// which a random read is hedged, in (0, 1]. Default
	// DefaultHedgeQuantile (0.95).
	HedgeQuantile float64
}

func (o *Options) normalize() Options {
	// MinPartSize and Retries go down as given: prefetch and mrdpool apply
	// their own defaults. The settings below are the ones this package uses
	// itself (its defaults are the lower packages' constants).
	r := defaults.Of(o)
	r.PoolSize = defaults.Positive(r.PoolSize, DefaultPoolSize)
	r.Concurrency = defaults.Positive(r.Concurrency, DefaultConcurrency)
	r.BlockSize = defaults.Positive(r.BlockSize, DefaultBlockSize)
	r.MaxPrefetch = max(defaults.Positive(r.MaxPrefetch, DefaultMaxPrefetch), r.BlockSize)
	r.PrefetchBudget = defaults.Positive(r.PrefetchBudget, max(DefaultPrefetchBudget, 2*r.MaxPrefetch))
	r.CoalesceGap = max(cmp.Or(r.CoalesceGap, DefaultCoalesceGap), 0) // negative: no coalescing
	r.StallTimeout = cmp.Or(r.StallTimeout, DefaultStallTimeout)
	if !(r.HedgeQuantile > 0 && r.HedgeQuantile <= 1) {
		r.HedgeQuantile = DefaultHedgeQuantile
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// retryOptions bound the storage client's own retries: half the stall
// timeout, so its error (naming the last failure, e.g. a refused
// connection) comes before the stall bound cuts the call.
func (o *Options) retryOptions() []storage.RetryOption {
	return mrdpool.RetryOptions(o.StallTimeout/2, o.Logger)
}

// newBuffers makes the FS-wide prefetch buffer pool.
func (o *Options) newBuffers() *directbuf.Pool { return directbuf.NewPool(o.PrefetchBudget) }
