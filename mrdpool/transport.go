package mrdpool

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
	res, err := base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || (res.StatusCode != http.StatusOK && res.StatusCode != http.StatusPartialContent) {
		return res, err
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
