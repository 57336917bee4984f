package mrdpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// CheckingTransport is an http.RoundTripper for the HTTP client of a GCS
// bucket read through a BlobBackend. It makes two promises the storage
// client (v1.70) does not keep on the XML API's ranged reads:
//
//   - Generation: a read pinned to a generation carries it in the request
//     ("?generation=N"), but the client reports the generation it asked for
//     as the reader's, whatever the server answered. The transport compares
//     the response's own X-Goog-Generation header with the request's and
//     fails the request with an error wrapping ErrObjectChanged when they
//     differ.
//   - Range: a server that answers a ranged GET with 200 and the whole
//     object (ignoring Range) would hand the caller bytes outside the range
//     at offset 0, and fail the read for good elsewhere. The transport cuts
//     such a body down to the range asked for and answers 206 with the
//     Content-Range the client expects.
//   - Resumes: when a ranged read's body breaks, the client reopens it on
//     its own, at once and without limit (v1.70's httpReader.Read), so a
//     server that resets every body got thousands of requests a second
//     until the stall timeout, and Options.Retries and RetryBackoff did not
//     apply. For a read made by a BlobBackend downloader (its context is
//     marked; see GuardBody) the transport refuses a second GET once a
//     first one answered with a body: the read then fails with the bytes
//     it got, and the Pool resumes it under its own retry policy.
//
// Other requests and responses pass through untouched. A nil Base means
// http.DefaultTransport.
type CheckingTransport struct {
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *CheckingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	g, _ := req.Context().Value(bodyGuardKey{}).(*bodyGuard)
	if g != nil && !isMediaGet(req) {
		g = nil // metadata calls are not the read's body
	}
	if g != nil && g.answered.Load() {
		return nil, errReopenRefused
	}
	res, err := base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || (res.StatusCode != http.StatusOK && res.StatusCode != http.StatusPartialContent) {
		return res, err
	}
	if g != nil {
		g.answered.Store(true)
	}
	if want := req.URL.Query().Get("generation"); want != "" {
		if got := res.Header.Get("X-Goog-Generation"); got != "" && got != want {
			res.Body.Close()
			return nil, fmt.Errorf("%w: %s: the server answered with generation %s for pinned generation %s", ErrObjectChanged, req.URL.Path, got, want)
		}
	}
	if res.StatusCode == http.StatusOK && req.Header.Get("Range") != "" {
		return sliceIgnoredRange(req.Header.Get("Range"), res), nil
	}
	return res, nil
}

// sliceIgnoredRange turns a 200 carrying the whole object into the 206 of
// the range asked for. A response it cannot slice safely (unknown length,
// a compressed body the client decompresses itself, a range it does not
// parse) is returned as it is, for the client's own checks.
func sliceIgnoredRange(rangeHeader string, res *http.Response) *http.Response {
	size := res.ContentLength
	if size < 0 || res.Header.Get("Content-Encoding") != "" || res.Header.Get("X-Goog-Stored-Content-Encoding") == "gzip" {
		return res
	}
	start, end, ok := parseRange(rangeHeader, size)
	if !ok {
		return res
	}
	body := res.Body
	res.Body = &slicedBody{r: io.LimitReader(body, end+1), skip: start, c: body}
	res.StatusCode, res.Status = http.StatusPartialContent, "206 Partial Content"
	res.ContentLength = end - start + 1
	res.Header.Set("Content-Length", strconv.FormatInt(res.ContentLength, 10))
	res.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	res.Header.Del("X-Goog-Hash") // the hashes are of the whole object
	return res
}

// parseRange parses a single-range "bytes=S-E", "bytes=S-" or "bytes=-N"
// against an object of size bytes, clipping E to the object.
func parseRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	first, last, dash := strings.Cut(spec, "-")
	if !found || !dash || strings.Contains(spec, ",") || size == 0 {
		return 0, 0, false
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size - 1, true
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end = size - 1
	if last != "" {
		e, err := strconv.ParseInt(last, 10, 64)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e, end)
	}
	return start, end, true
}

// slicedBody skips the bytes before the range, then reads up to its end.
type slicedBody struct {
	r    io.Reader
	skip int64
	c    io.Closer
}

func (b *slicedBody) Read(p []byte) (int, error) {
	if b.skip > 0 {
		n, err := io.CopyN(io.Discard, b.r, b.skip)
		b.skip -= n
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	return b.r.Read(p)
}

func (b *slicedBody) Close() error { return b.c.Close() }

// isMediaGet reports whether req downloads object data: a GET of the XML
// API (any path outside the JSON API's /storage/v1/), or of the JSON API
// with alt=media.
func isMediaGet(req *http.Request) bool {
	return req.Method == http.MethodGet && (!strings.Contains(req.URL.Path, "/storage/v1/") || req.URL.Query().Get("alt") == "media")
}

// bodyGuard marks the context of one ranged read (GuardBody): answered is
// set once a GET of it got a response with a body.
type bodyGuard struct{ answered atomic.Bool }

type bodyGuardKey struct{}

// GuardBody marks ctx as the context of one ranged read (one
// NewRangeReader), so that a CheckingTransport lets one GET of it answer
// and refuses the storage client's reopens of a broken body (see
// CheckingTransport): the caller resumes the read under its own retry
// policy. The client's retries of a request that got no answer (a refused
// connection, a 503) still go through, under its retry options. Without a
// CheckingTransport the mark does nothing.
func GuardBody(ctx context.Context) context.Context {
	return context.WithValue(ctx, bodyGuardKey{}, &bodyGuard{})
}

// errReopenRefused fails the storage client's reopen of a broken body. Its
// text must not match the client's retryable errors (ShouldRetry matches
// "connection reset" and the like in a *url.Error), or the client would
// retry the refusal itself; the Pool treats it as any failed range.
var errReopenRefused = errors.New("mrdpool: the response body broke; the range is resumed under the pool's retry policy, not reopened by the storage client")
