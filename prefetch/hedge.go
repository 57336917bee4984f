package prefetch

import "context"

// HedgingFetcher is a Fetcher that can hedge a read: issue a second
// request for it when the first is slow to answer, and take whichever
// answers first (mrdpool.Pool with Options.HedgeDelay is one). The engine
// calls ReadAtHedged for the bytes of random reads, which a reader waits
// on, and ReadAt for everything else: prefetch windows (fetched ahead, so
// a slow first byte costs the reader nothing, while a hedge would double
// a large request) and ReadDirect's whole ranges.
type HedgingFetcher interface {
	Fetcher
	// ReadAtHedged is ReadAt, possibly hedged. It has ReadAt's contract:
	// in particular it must not touch p after it returns.
	ReadAtHedged(ctx context.Context, p []byte, off int64) (int, error)
}
