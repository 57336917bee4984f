package testserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The HTTP endpoint serves fake-gcs-server's handler through shaper, which
// applies the Endpoint's shape, faults and counters.
//
// Object media downloads are
//
//	GET /<bucket>/<object>                       XML API; what storage.Reader uses
//	GET /storage/v1/b/<bucket>/o/<object>?alt=media  JSON API (storage.WithJSONReads)
//	GET /download/storage/v1/b/<bucket>/o/<object>   JSON API media path
//
// Every other request (HEAD, metadata, listing, uploads) counts as a
// metadata request and only gets the latency.
type shaper struct {
	ep         *Endpoint
	next       http.Handler
	publicHost string
	closing    <-chan struct{}

	mu      sync.Mutex
	idle    sync.Cond // signaled when running drops to 0
	running int       // handlers running now
}

func newShaper(ep *Endpoint, next http.Handler, publicHost string, closing <-chan struct{}) *shaper {
	h := &shaper{ep: ep, next: next, publicHost: publicHost, closing: closing}
	h.idle.L = &h.mu
	return h
}

// connShape is the shaping state of one TCP connection. HTTP/1.1 serves
// one request at a time per connection, so it needs no lock.
type connShape struct {
	shape *Shape // the link shape st was made for
	st    *stream
}

type connShapeKey struct{}

// connContext gives each accepted connection its own bandwidth stream.
func (h *shaper) connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connShapeKey{}, &connShape{})
}

func (h *shaper) connState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		h.ep.c.streamOpened()
		h.ep.c.peerSeen(c.RemoteAddr().String())
	case http.StateClosed, http.StateHijacked:
		h.ep.c.streamClosed()
	}
}

// stream returns the connection's stream, made anew when the link shape
// changed since it was made (SetShape applies to responses started after
// it, on old connections too).
func (h *shaper) stream(ctx context.Context) *stream {
	cs, _ := ctx.Value(connShapeKey{}).(*connShape)
	if cs == nil {
		return h.ep.link.newStream()
	}
	if cur := h.ep.link.shape.Load(); cs.st == nil || cs.shape != cur {
		cs.shape = cur
		cs.st = h.ep.link.newStream()
	}
	return cs.st
}

// wait waits until no handler is running. (A sync.WaitGroup would not do:
// a connection can start a handler while Close waits.)
func (h *shaper) wait() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.running > 0 {
		h.idle.Wait()
	}
}

func (h *shaper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.running++
	h.mu.Unlock()
	h.ep.c.requestStarted()
	defer h.ep.c.requestEnded()
	defer func() {
		h.mu.Lock()
		if h.running--; h.running == 0 {
			h.idle.Broadcast()
		}
		h.mu.Unlock()
	}()
	ctx := r.Context()
	st := h.stream(ctx)
	object, media := h.classify(r)
	if !media {
		h.ep.c.metadata.Add(1)
		if st.firstByte(ctx) != nil {
			return
		}
		h.next.ServeHTTP(w, r)
		return
	}
	h.ep.c.requests.Add(1)
	if st.dataFirstByte(ctx, &h.ep.c, time.Now()) != nil {
		return
	}
	if r.Header.Get("Range") != "" && h.ep.faults.take(object, FaultIgnoreRange) {
		h.ep.c.faults[FaultIgnoreRange].Add(1)
		r.Header.Del("Range")
	}
	sw := &shapedWriter{rw: w, h: h, ctx: ctx, st: st, object: object, limit: -1}
	h.next.ServeHTTP(sw, r)
	if !sw.cut {
		return
	}
	// The body was cut at fault.AfterBytes.
	rc := http.NewResponseController(w)
	switch sw.fault.Kind {
	case FaultShortBody:
		// Returning short of Content-Length makes net/http close the
		// connection after what was written: the client sees an
		// unexpected EOF.
		return
	case FaultStall:
		rc.Flush()
		select {
		case <-ctx.Done():
		case <-h.closing:
		}
		return
	case FaultReset:
		rc.Flush()
		conn, bufrw, err := rc.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		bufrw.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST rather than FIN
		}
		conn.Close()
	}
}

// classify reports whether r is an object media download, and of which
// object.
func (h *shaper) classify(r *http.Request) (object string, media bool) {
	if r.Method != http.MethodGet {
		return "", false
	}
	p := r.URL.EscapedPath()
	var rest string
	switch {
	case strings.HasPrefix(p, "/download/storage/v1/b/"):
		rest = strings.TrimPrefix(p, "/download/storage/v1/b/")
	case strings.HasPrefix(p, "/storage/v1/b/"):
		if r.URL.Query().Get("alt") != "media" {
			return "", false
		}
		rest = strings.TrimPrefix(p, "/storage/v1/b/")
	case strings.HasPrefix(p, "/storage/"), strings.HasPrefix(p, "/upload/"),
		strings.HasPrefix(p, "/download/"), strings.HasPrefix(p, "/batch/"),
		strings.HasPrefix(p, "/_internal/"):
		return "", false
	default:
		// XML API, path style: /<bucket>/<object>.
		if r.Host != h.publicHost {
			return "", false
		}
		bucket, obj, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
		if !ok || bucket == "" || obj == "" {
			return "", false
		}
		return unescape(obj), true
	}
	// JSON API: <bucket>/o/<object>.
	bucket, obj, ok := strings.Cut(rest, "/o/")
	if !ok || bucket == "" || strings.Contains(bucket, "/") || obj == "" {
		return "", false
	}
	return unescape(obj), true
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// errCut stops fake-gcs-server's copy of the body at a fault.
var errCut = errors.New("testserver: response cut by injected fault")

// shapedWriter writes a media response body in pieces of at most
// chunkSize, each after its share of bandwidth, and injects the fault
// drawn for the response.
type shapedWriter struct {
	rw     http.ResponseWriter
	h      *shaper
	ctx    context.Context
	st     *stream
	object string

	wroteHeader bool
	discard     bool  // 503 sent; drop the body
	errorBody   bool  // the server answered with an error (e.g. 416): its body is no object bytes
	limit       int64 // bytes to send before the fault; -1 for none
	sent        int64
	fault       Fault
	cut         bool // the body stopped at limit
}

func (w *shapedWriter) Header() http.Header { return w.rw.Header() }

// Unwrap lets http.ResponseController reach the connection.
func (w *shapedWriter) Unwrap() http.ResponseWriter { return w.rw }

func (w *shapedWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if code != http.StatusOK && code != http.StatusPartialContent {
		w.errorBody = true
		w.rw.WriteHeader(code)
		return
	}
	f, ok := w.h.ep.faults.next(w.object)
	if !ok {
		w.rw.WriteHeader(code)
		return
	}
	if f.Kind == FaultWrongGeneration {
		w.h.ep.c.faults[f.Kind].Add(1)
		g, _ := strconv.ParseInt(w.rw.Header().Get("X-Goog-Generation"), 10, 64)
		w.rw.Header().Set("X-Goog-Generation", strconv.FormatInt(g+1, 10))
		w.rw.WriteHeader(code)
		return
	}
	if f.Kind == FaultCorrupt {
		// Not injected over HTTP: ranged XML reads carry no checksum a
		// client could check, so it would only test the fake.
		w.rw.WriteHeader(code)
		return
	}
	if f.Kind == Fault503 || f.Kind == FaultFatal {
		w.h.ep.c.faults[f.Kind].Add(1)
		w.discard = true
		hdr := w.rw.Header()
		for k := range hdr {
			delete(hdr, k)
		}
		hdr.Set("Content-Length", "0")
		status := http.StatusServiceUnavailable
		if f.Kind == FaultFatal {
			status = http.StatusForbidden
		}
		w.rw.WriteHeader(status)
		return
	}
	// A cut at or past the end of the body is no fault: the response is
	// served whole (a counted rule still loses a use).
	if f.AfterBytes < 0 {
		f.AfterBytes = 0
	}
	if cl, err := strconv.ParseInt(w.rw.Header().Get("Content-Length"), 10, 64); err != nil || f.AfterBytes < cl {
		if f.Kind >= Fault503 && f.Kind <= FaultStall {
			w.h.ep.c.faults[f.Kind].Add(1)
		}
		w.fault = f
		w.limit = f.AfterBytes
	}
	w.rw.WriteHeader(code)
}

func (w *shapedWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return 0, errCut
	}
	if w.errorBody {
		return w.rw.Write(p) // an error's text, not object bytes
	}
	n := 0
	for n < len(p) {
		if w.limit >= 0 && w.sent >= w.limit {
			w.cut = true
			return n, errCut
		}
		k := min(len(p)-n, chunkSize)
		if w.limit >= 0 {
			k = int(min(int64(k), w.limit-w.sent))
		}
		if err := w.st.send(w.ctx, k); err != nil {
			return n, err
		}
		// Counted before the write: once written, the client may finish
		// and read the counters before this goroutine runs again.
		w.h.ep.c.bytes.Add(int64(k))
		m, err := w.rw.Write(p[n : n+k])
		if m < k {
			w.h.ep.c.bytes.Add(int64(m - k))
		}
		n += m
		w.sent += int64(m)
		if err != nil {
			return n, err
		}
	}
	if w.limit >= 0 && w.sent >= w.limit {
		w.cut = true
	}
	return n, nil
}
