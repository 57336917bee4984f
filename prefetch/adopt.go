package prefetch

import (
	"context"
	"io"
	"time"

	"github.com/zonalread/zonalread/internal/byterange"
)

// adoptStep is the most a body Read fills before its bytes are committed,
// so a read waits only for the bytes it needs, not for the whole response.
const adoptStep = 256 << 10

// Body is the response body of a request already in flight, for Adopt.
type Body interface {
	io.ReadCloser
	// Abort makes a Read in flight (and every later one) return an error.
	// It is called from another goroutine than Read's; Close is called
	// only after the last Read has returned.
	Abort()
}

// Adopt makes [off, off+n) of the object a prefetched chunk filled from
// body, the response of a request already in flight (gcsfs's open, whose
// ranged GET is also its stat). It returns false, leaving body to the
// caller, if the engine is closed or already holds prefetched data, the
// range is empty or outside the object, or the budget has no buffer for it
// now. Otherwise the engine owns body: it copies the bytes in as they
// arrive (a read waits only for those it needs) and closes body when it
// ends, when the chunk is dropped (a read elsewhere), at Close, or after
// stall without a byte (stall <= 0: no bound). If body fails or ends early,
// the reads that need the missing bytes fetch them themselves through the
// Fetcher. The range counts in Stats as one prefetch request.
func (e *Engine) Adopt(off, n int64, body Body, stall time.Duration) bool {
	if n <= 0 || !byterange.Within(off, n, e.size) {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || len(e.chunks) > 0 {
		return false
	}
	buf, ok := e.opts.Buffers.TryGet(int(n))
	if !ok {
		return false
	}
	ctx, cancel := context.WithCancel(e.ctx)
	c := &chunk{off: off, buf: buf, cancel: cancel}
	e.chunks = append(e.chunks, c)
	e.requests.Add(1)
	e.fetched.Add(n)
	e.prefetched.Add(n)
	c.users.Add(1)
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		defer c.users.Done()
		fill(ctx, c, n, body, stall)
	}()
	return true
}

// fill copies body into the chunk's first n bytes, committing as it goes;
// what does not arrive fails with errDropped, so readers fetch it.
func fill(ctx context.Context, c *chunk, n int64, body Body, stall time.Duration) {
	defer body.Close()
	stop := context.AfterFunc(ctx, body.Abort) // a Read in flight returns
	defer stop()
	var timer *time.Timer
	if stall > 0 {
		timer = time.AfterFunc(stall, body.Abort)
		defer timer.Stop()
	}
	p := c.buf.Bytes()[:n]
	var pos int64
	for pos < n {
		k, err := body.Read(p[pos:min(n, pos+adoptStep)])
		if k > 0 {
			c.buf.Commit(pos, int64(k))
			pos += int64(k)
			if timer != nil {
				timer.Reset(stall)
			}
		}
		if err != nil {
			break
		}
	}
	if pos < n {
		c.buf.Fail(pos, n-pos, errDropped)
	}
}
