package dataset

import (
	"context"
	"sync"
)

// footerResult is one file's resolved footer, or why it could not be
// resolved.
type footerResult struct {
	idx int
	f   *footer
	err error
}

// metadataFetcher resolves the footers of an execution's files, in file
// order, one request at a time. The scheduling loop calls only this
// interface and decides when to request (look-ahead, Limit).
type metadataFetcher interface {
	// request asks for file i's footer. An inline fetcher resolves it now
	// and returns it (ok true); a threaded one resolves it in the
	// background and delivers it on results.
	request(i int) (r footerResult, ok bool)
	// results is where background footers arrive (nil for inline).
	results() <-chan footerResult
	// close stops background work, waits for it and closes the files of
	// footers never delivered.
	close()
}

// inlineFetcher resolves footers on the caller's goroutine.
type inlineFetcher struct {
	ctx context.Context
	d   *Dataset
}

func (f *inlineFetcher) request(i int) (footerResult, bool) { return f.d.resolveFooter(f.ctx, i), true }
func (f *inlineFetcher) results() <-chan footerResult       { return nil }
func (f *inlineFetcher) close()                             {}

// threadedFetcher resolves footers on one background goroutine per
// request; the loop keeps at most footerLookahead requests outstanding, so
// the results channel never blocks a fetch.
type threadedFetcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	d      *Dataset
	out    chan footerResult
	wg     sync.WaitGroup
	mu     sync.Mutex
	prev   chan struct{} // closed when the previous request has delivered: keeps file order
}

func newThreadedFetcher(ctx context.Context, d *Dataset) *threadedFetcher {
	ctx, cancel := context.WithCancel(ctx)
	first := make(chan struct{})
	close(first)
	return &threadedFetcher{ctx: ctx, cancel: cancel, d: d, out: make(chan footerResult, footerLookahead+1), prev: first}
}

func (f *threadedFetcher) request(i int) (footerResult, bool) {
	f.mu.Lock()
	prev, mine := f.prev, make(chan struct{})
	f.prev = mine
	f.mu.Unlock()
	f.wg.Go(func() {
		defer close(mine)
		r := f.d.resolveFooter(f.ctx, i)
		<-prev // deliver in file order
		f.out <- r
	})
	return footerResult{}, false
}

func (f *threadedFetcher) results() <-chan footerResult { return f.out }

func (f *threadedFetcher) close() {
	f.cancel()
	f.wg.Wait()
	for {
		select {
		case r := <-f.out:
			if r.f != nil {
				r.f.src.c.Close()
			}
		default:
			return
		}
	}
}
