package mrdpool

import (
	"context"
	"sync"
	"time"
)

// ReadAtHedged is ReadAt for a random read, one a caller waits on with
// nothing else to do (not a prefetch window fetched ahead): when
// Options.HedgeDelay is set and ready, and the read has seen no byte after
// that delay, a second, identical request is issued, and whichever of the
// two answers first (delivers a byte, or succeeds) is taken; the other is
// cancelled. A request that fails while the other still runs does not
// answer: the other is waited for (both failing returns the first
// request's error).
//
// Each request writes into its own buffer (the first into b, the second
// into one of its own whose bytes are copied to b if it wins), and
// ReadAtHedged returns only once both have returned, so a loser never
// touches b afterwards and leaves no goroutine behind (a cancelled range on
// a downloader that cannot cancel one still arrives and is dropped). If
// ctx ends, it returns the valid prefix in b and ctx.Err().
//
// On a backend whose downloaders carry many ranges (a multi-range
// downloader), the second request shares an open downloader rather than
// open one, which would cost it a round trip before its own; when the
// first request's slowness is its stream's own, the hedge may be as slow,
// and the read is no slower than unhedged. Hedges count
// in Stats.Hedges, hedges that won in Stats.HedgeWins; the server sends
// the loser's bytes up to its cancellation, so hedging costs fetched bytes
// only when both requests have started to answer.
func (p *Pool) ReadAtHedged(ctx context.Context, b []byte, off int64) (int, error) {
	if p.opts.HedgeDelay == nil || len(b) == 0 {
		return p.ReadAt(ctx, b, off)
	}
	first := p.startAttempt(ctx, b, off, false)
	delay, ok := p.opts.HedgeDelay() // the first request is on its way
	if !ok {
		return first.wait()
	}
	timer := time.NewTimer(delay)
	select {
	case <-first.firstByte:
		timer.Stop()
		return first.wait()
	case <-first.done:
		timer.Stop()
		return first.wait()
	case <-timer.C:
	}
	p.hedges.Add(1)
	p.hedgeBytes.Add(int64(len(b)))
	second := p.startAttempt(ctx, make([]byte, len(b)), off, true)
	winner, loser := race(first, second)
	loser.cancel()
	n, err := winner.wait()
	loser.wait()
	if winner == second {
		p.hedgeWins.Add(1)
		copy(b, second.b[:n])
	}
	if ctx.Err() != nil {
		return n, ctx.Err()
	}
	return n, err
}

// attempt is one request of a hedged read, run on its own goroutine.
type attempt struct {
	b         []byte
	cancel    context.CancelFunc
	firstByte chan struct{} // closed at the first byte in b
	done      chan struct{} // closed when the read has returned n and err
	n         int
	err       error
}

// startAttempt starts one request of a hedged read; share is readOpts.share.
func (p *Pool) startAttempt(ctx context.Context, b []byte, off int64, share bool) *attempt {
	actx, cancel := context.WithCancel(ctx)
	a := &attempt{b: b, cancel: cancel, firstByte: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	go func() {
		defer close(a.done)
		a.n, a.err = p.readAt(actx, b, off, readOpts{firstByte: func() { once.Do(func() { close(a.firstByte) }) }, share: share})
	}()
	return a
}

// wait returns the attempt's result once its read has returned.
func (a *attempt) wait() (int, error) {
	<-a.done
	a.cancel()
	return a.n, a.err
}

// race returns the attempt that answers first: the first to deliver a byte
// or to succeed. One that fails while the other runs does not answer; when
// both fail, x (the first request) is the winner.
func race(x, y *attempt) (winner, loser *attempt) {
	xDone, yDone := x.done, y.done
	for {
		select {
		case <-x.firstByte:
			return x, y
		case <-y.firstByte:
			return y, x
		case <-xDone:
			if x.err == nil || yDone == nil {
				return x, y
			}
			xDone = nil
		case <-yDone:
			if y.err == nil {
				return y, x
			}
			if xDone == nil {
				return x, y
			}
			yDone = nil
		}
	}
}
