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

// AdoptedPart is [Off, Off+N) of the object and Body, the response of a
// request already in flight for it; a nil Body is a request that failed.
type AdoptedPart struct {
	Off, N int64
	Body   Body
	// CommitAtEnd makes the part's bytes readable only once its body has
	// ended cleanly, all at once, not as they arrive: for a body that
	// checks a checksum after handing out the bytes it covers (a gRPC
	// read checks each message's once the message is read).
	CommitAtEnd bool
}

// AdoptParts makes the range the parts cover, which must follow each other
// without a gap, a prefetched chunk filled from their bodies: the responses
// of requests already in flight (gcsfs's open, whose ranged GETs go out
// with its stat). It returns false, leaving every body to the caller, if
// the engine is closed or already holds prefetched data, a part is empty,
// out of order or outside the object, no part has a body, or the budget
// has no buffer for the range now. Otherwise the engine owns the bodies: it
// copies each one's bytes in as they arrive (a read waits only for those
// it needs) and closes it when it ends, when the chunk is dropped (a read
// elsewhere), at Close, or after stall without a byte (stall <= 0: no
// bound). The bytes of a part without a body, or whose body fails or ends
// early, are fetched by the reads that need them through the Fetcher. Each
// body counts in Stats as one prefetch request.
func (e *Engine) AdoptParts(parts []AdoptedPart, stall time.Duration) bool {
	if !adoptable(parts, e.size) {
		return false
	}
	off := parts[0].Off
	last := parts[len(parts)-1]
	n := last.Off + last.N - off // adoptable: no overflow
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
	e.prefetched.Add(n)
	for _, pt := range parts {
		from := pt.Off - off
		if pt.Body == nil {
			c.buf.Fail(from, pt.N, errDropped)
			continue
		}
		e.requests.Add(1)
		e.fetched.Add(pt.N)
		c.users.Add(1)
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			defer c.users.Done()
			e.fill(ctx, c, from, pt, stall)
		}()
	}
	return true
}

// adoptable reports whether parts are non-empty ranges inside an object of
// size bytes that follow each other without a gap, at least one with a
// body.
func adoptable(parts []AdoptedPart, size int64) bool {
	bodies := 0
	for i, pt := range parts {
		if pt.N <= 0 || !byterange.Within(pt.Off, pt.N, size) {
			return false
		}
		if i > 0 && pt.Off != parts[i-1].Off+parts[i-1].N {
			return false
		}
		if pt.Body != nil {
			bodies++
		}
	}
	return bodies > 0
}

// fill copies the part's body into its bytes of the chunk, which start at
// from, committing as it goes (or, with CommitAtEnd, once the body ended
// cleanly, telling arrivedIn of the bytes before); what does not arrive
// fails with errDropped, so readers fetch it.
func (e *Engine) fill(ctx context.Context, c *chunk, from int64, pt AdoptedPart, stall time.Duration) {
	body, n := pt.Body, pt.N
	defer body.Close()
	stop := context.AfterFunc(ctx, body.Abort) // a Read in flight returns
	defer stop()
	var timer *time.Timer
	if stall > 0 {
		timer = time.AfterFunc(stall, body.Abort)
		defer timer.Stop()
	}
	p := c.buf.Bytes()[from : from+n]
	var pos, committed int64
	var err error
	for pos < n && err == nil {
		var k int
		k, err = body.Read(p[pos:min(n, pos+adoptStep)])
		if k > 0 {
			pos += int64(k)
			if timer != nil {
				timer.Reset(stall)
			}
			if pt.CommitAtEnd {
				e.arrivedIn(c, int64(k))
			}
		}
		if !pt.CommitAtEnd && pos > committed {
			c.buf.Commit(from+committed, pos-committed)
			committed = pos
		}
	}
	if pt.CommitAtEnd && pos == n && cleanEnd(body, err) {
		c.buf.Commit(from, n)
		committed = n
	}
	if committed < n {
		c.buf.Fail(from+committed, n-committed, errDropped)
	}
}

// cleanEnd reports whether a body that delivered all its bytes, the last
// Read returning err, ended without error: a checksum is checked at the
// end of what it covers, so the body is read to io.EOF.
func cleanEnd(body Body, err error) bool {
	if err == nil {
		var one [1]byte
		_, err = body.Read(one[:])
	}
	return err == io.EOF
}
