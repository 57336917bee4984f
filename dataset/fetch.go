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
// order, one request at a time: the seam between the scheduling loop and
// how footers are fetched. The loop calls only this interface; it requests
// while fewer than lookahead files are resolved-or-requested but not yet
// launched (and the Limit needs more).
type metadataFetcher interface {
	// lookahead is how many files may be ahead of the launched tasks:
	// requested but not delivered, or resolved with a task to launch.
	lookahead() int
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

// resolveFunc resolves file i's footer (Dataset.resolveFooter; a fake in
// tests). A result with a footer holds its file open.
type resolveFunc func(ctx context.Context, i int) footerResult

// newMetadataFetcher is the fetcher for mode (Inline or Threaded).
func newMetadataFetcher(ctx context.Context, mode MetadataFetch, resolve resolveFunc) metadataFetcher {
	if mode == Inline {
		return &inlineFetcher{ctx: ctx, resolve: resolve}
	}
	return newThreadedFetcher(ctx, resolve)
}

// inlineFetcher resolves footers on the loop's goroutine, blocking it: it
// fetches only when nothing is left to launch.
type inlineFetcher struct {
	ctx     context.Context
	resolve resolveFunc
}

func (f *inlineFetcher) lookahead() int                     { return 1 }
func (f *inlineFetcher) request(i int) (footerResult, bool) { return f.resolve(f.ctx, i), true }
func (f *inlineFetcher) results() <-chan footerResult       { return nil }
func (f *inlineFetcher) close()                             {}

// threadedFetcher resolves footers off the loop, one goroutine per
// request, delivering them in file order; with at most footerLookahead
// requests outstanding the results channel never blocks a fetch, and at
// most that many files are open ahead of the tasks.
type threadedFetcher struct {
	ctx     context.Context
	cancel  context.CancelFunc
	resolve resolveFunc
	out     chan footerResult
	wg      sync.WaitGroup
	mu      sync.Mutex
	prev    chan struct{} // closed when the previous request has delivered: keeps file order
}

func newThreadedFetcher(ctx context.Context, resolve resolveFunc) *threadedFetcher {
	ctx, cancel := context.WithCancel(ctx)
	first := make(chan struct{})
	close(first)
	return &threadedFetcher{ctx: ctx, cancel: cancel, resolve: resolve, out: make(chan footerResult, footerLookahead+1), prev: first}
}

func (f *threadedFetcher) lookahead() int { return footerLookahead }

func (f *threadedFetcher) request(i int) (footerResult, bool) {
	f.mu.Lock()
	prev, mine := f.prev, make(chan struct{})
	f.prev = mine
	f.mu.Unlock()
	f.wg.Go(func() {
		defer close(mine)
		r := f.resolve(f.ctx, i)
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
