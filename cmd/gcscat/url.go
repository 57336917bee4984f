package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zonalread/zonalread/gcsfs"
)

// objectURL is a parsed gs:// or file:// URL: a bucket and a path in it.
type objectURL struct {
	scheme    string // "gs" or "file"
	bucket    string // bucket name (gs) or directory (file)
	name      string // object path in the bucket; "." for the bucket's root
	zonal     string // gs: the ?zonal= parameter, "" if absent
	anonymous bool   // gs: ?anonymous=true
	fileQuery string // file: the query, passed to gocloud's fileblob
}

// parseFlagsAndURLs parses args for a command whose positional arguments
// are all URLs: the flags, then the URLs (at least one).
func parseFlagsAndURLs(f *flagSet, args []string) ([]objectURL, error) {
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	return parseURLs(f, pos)
}

// parseURLs parses the command's URL arguments; at least one is required.
func parseURLs(f *flagSet, args []string) ([]objectURL, error) {
	if len(args) == 0 {
		return nil, f.usageErr("no URL given")
	}
	urls := make([]objectURL, len(args))
	for i, a := range args {
		var err error
		if urls[i], err = parseURL(f, a); err != nil {
			return nil, err
		}
	}
	return urls, nil
}

// badURL returns the usage error for a URL gcscat cannot use.
func badURL(f *flagSet, raw, format string, a ...any) error {
	return f.usageErr("bad URL %q: %s", raw, fmt.Sprintf(format, a...))
}

// parseURL parses a command-line URL. Bucket names in gs:// URLs are
// checked against GCS's naming rules; object paths must be valid io/fs
// paths (no "." or ".." elements, no empty elements); a trailing slash is
// dropped.
func parseURL(f *flagSet, raw string) (objectURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return objectURL{}, badURL(f, raw, "%v", errors.Unwrap(err))
	}
	o := objectURL{scheme: u.Scheme}
	switch u.Scheme {
	case "gs":
		if !validBucketName(u.Host) {
			if u.Host == "" {
				return o, badURL(f, raw, "no bucket name (want gs://bucket/path)")
			}
			return o, badURL(f, raw, "%q is not a valid bucket name", u.Host)
		}
		o.bucket = u.Host
		for k, vs := range u.Query() {
			v := vs[len(vs)-1]
			switch k {
			case "zonal":
				if _, ok := gcsfs.ParseZonal(v); !ok {
					return o, badURL(f, raw, "zonal=%q (want auto, true or false)", v)
				}
				o.zonal = v
			case "anonymous":
				b, err := strconv.ParseBool(v)
				if err != nil {
					return o, badURL(f, raw, "anonymous=%q (want true or false)", v)
				}
				o.anonymous = b
			default:
				return o, badURL(f, raw, "unknown query parameter %q (want zonal or anonymous)", k)
			}
		}
		name := strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")
		if name == "" {
			name = "."
		}
		if !fs.ValidPath(name) {
			return o, badURL(f, raw, "%q is not an object path gcscat can read (empty, '.' or '..' elements)", name)
		}
		o.name = name
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return o, badURL(f, raw, "file URLs name a local path: file:///dir/path")
		}
		p := filepath.Clean(u.Path)
		if !filepath.IsAbs(p) {
			return o, badURL(f, raw, "file URLs need an absolute path: file:///dir/path")
		}
		o.fileQuery = u.RawQuery
		// A directory is the bucket itself; anything else (an existing
		// file, or nothing) is a name in its parent directory.
		if st, err := os.Stat(p); (err == nil && st.IsDir()) || strings.HasSuffix(u.Path, "/") {
			o.bucket, o.name = p, "."
		} else {
			o.bucket, o.name = filepath.Dir(p), filepath.Base(p)
		}
	case "":
		return o, badURL(f, raw, "no scheme (want gs://bucket/path or file:///dir/path)")
	default:
		return o, badURL(f, raw, "unsupported scheme %q (want gs:// or file://)", u.Scheme)
	}
	return o, nil
}

// validBucketName checks GCS's bucket naming rules, loosely: 3 to 222
// characters of a-z, 0-9, '-', '_' and '.', starting and ending with a
// letter or digit.
func validBucketName(s string) bool {
	if len(s) < 3 || len(s) > 222 {
		return false
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(s)-1 || c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return true
}

// child returns the URL of name (a path in the bucket) for printing.
func (o objectURL) child(name string) string {
	if o.scheme == "file" {
		return "file://" + filepath.ToSlash(filepath.Join(o.bucket, filepath.FromSlash(name)))
	}
	if name == "." {
		return "gs://" + o.bucket + "/"
	}
	return "gs://" + o.bucket + "/" + name
}

// String is the URL's canonical form.
func (o objectURL) String() string { return o.child(o.name) }

// bucketLabel names the bucket for messages.
func (o objectURL) bucketLabel() string {
	if o.scheme == "file" {
		return "file://" + filepath.ToSlash(o.bucket)
	}
	return "gs://" + o.bucket
}

// joinName joins a directory path and an entry name in a bucket.
func joinName(dir, name string) string {
	if dir == "." {
		return name
	}
	return path.Join(dir, name)
}
