package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"golang.org/x/oauth2"

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

// openedFS is an FS gcscat opened, with what closes it.
type openedFS struct {
	*gcsfs.FS
	label      string
	bucketName string // gs: the bucket's name
	dir        string // file: the directory
	closer     func() error
}

// fsCache opens one FS per bucket for a command and closes them all.
type fsCache struct {
	opts   gcsfs.Options
	data   bool // the command reads object data (else zonal is moot)
	order  []*openedFS
	byName map[string]*openedFS
}

func newFSCache(opts gcsfs.Options, readsData bool) *fsCache {
	if !readsData {
		opts.Zonal = gcsfs.ZonalOff // listing and stat never use the read backend
	}
	return &fsCache{opts: opts, data: readsData, byName: map[string]*openedFS{}}
}

func (c *fsCache) get(ctx context.Context, o objectURL) (*openedFS, error) {
	key := o.scheme + "\x00" + o.bucket + "\x00" + o.zonal + "\x00" + strconv.FormatBool(o.anonymous) + "\x00" + o.fileQuery
	if f := c.byName[key]; f != nil {
		return f, nil
	}
	f, err := openFS(ctx, o, c.opts, c.data)
	if err != nil {
		return nil, err
	}
	c.byName[key] = f
	c.order = append(c.order, f)
	return f, nil
}

// Close closes every FS, returning their errors joined.
func (c *fsCache) Close() error {
	var errs []error
	for _, f := range c.order {
		errs = append(errs, f.closer())
	}
	c.order, c.byName = nil, map[string]*openedFS{}
	return errors.Join(errs...)
}

// openFS opens the bucket of o with gcsfs.Open, which reads gs:// through
// its own transport (no stdout warning, enough idle connections, the
// emulator variables honoured) and reports missing credentials as
// gcsfs.ErrNoCredentials.
func openFS(ctx context.Context, o objectURL, opts gcsfs.Options, readsData bool) (*openedFS, error) {
	var u url.URL
	if o.scheme == "file" {
		u = url.URL{Scheme: "file", Path: filepath.ToSlash(o.bucket), RawQuery: o.fileQuery}
		if opts.Zonal == gcsfs.ZonalAuto {
			opts.Zonal = gcsfs.ZonalOff
		}
	} else {
		q := url.Values{}
		if o.zonal != "" && readsData {
			q.Set("zonal", o.zonal)
		}
		if o.anonymous {
			q.Set("anonymous", "true")
		}
		u = url.URL{Scheme: "gs", Host: o.bucket, RawQuery: q.Encode()}
	}
	f, err := gcsfs.Open(ctx, u.String(), &opts)
	if err != nil {
		switch {
		case errors.Is(err, gcsfs.ErrNoCredentials):
			return nil, &credentialsError{err: err}
		case errors.Is(err, fs.ErrNotExist):
			return nil, errNoBucket(o)
		case o.scheme == "file":
			if _, serr := os.Stat(o.bucket); errors.Is(serr, fs.ErrNotExist) {
				return nil, errNoBucket(o)
			}
		}
		return nil, err
	}
	of := &openedFS{FS: f, label: o.bucketLabel(), closer: f.Close}
	if o.scheme == "file" {
		of.dir = o.bucket
	} else {
		of.bucketName = o.bucket
	}
	return of, nil
}

// errIsDir is cat's error for a URL that names a prefix.
var errIsDir = errors.New("is a directory (a prefix), not an object: list it with gcscat ls")

// notFound returns err about u, named by its URL; when err says something
// does not exist and the bucket itself is missing, it says so instead, in
// the same words for every command: "gs://b: no such bucket".
func (o *openedFS) notFound(ctx context.Context, u objectURL, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) && o.bucketMissing(ctx) {
		return errNoBucket(u)
	}
	return objErr(u.String(), err)
}

func errNoBucket(u objectURL) error { return fmt.Errorf("%s: no such bucket", u.bucketLabel()) }

// bucketMissing asks whether the FS's bucket does not exist: a gs://
// bucket through its storage client's bucket metadata (a listing or an
// object read of a missing bucket is a plain 404), a file:// one by its
// directory.
func (o *openedFS) bucketMissing(ctx context.Context) bool {
	var c *storage.Client
	if o.bucketName != "" && o.Bucket().As(&c) {
		_, err := c.Bucket(o.bucketName).Attrs(ctx)
		return errors.Is(err, storage.ErrBucketNotExist)
	}
	if o.dir != "" {
		st, err := os.Stat(o.dir)
		return err != nil || !st.IsDir()
	}
	return false
}

// credentialsError is a failed lookup of Application Default Credentials.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string {
	const fix = "run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
	if p := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); p != "" {
		why := "not a usable credentials file"
		if _, err := os.Stat(p); err != nil {
			why = "no such file"
		}
		return fmt.Sprintf("cannot load Google Cloud credentials from GOOGLE_APPLICATION_CREDENTIALS=%s (%s): %s", p, why, fix)
	}
	return "no Google Cloud credentials found: " + fix
}

func (e *credentialsError) Unwrap() error { return e.err }

// describe turns an error into gcscat's one-line message: the common
// failures in plain words, anything else as the library said it.
func describe(err error) string {
	var ce *credentialsError
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &ce):
		return ce.Error()
	case errors.As(err, &re):
		// Never print a response body: it may hold a token.
		code := re.ErrorCode
		if code == "" {
			code = "HTTP " + strconv.Itoa(statusOf(re))
		}
		return fmt.Sprintf("Google Cloud rejected the credentials (%s): run 'gcloud auth application-default login' or check GOOGLE_APPLICATION_CREDENTIALS", code)
	case strings.Contains(err.Error(), "could not find default credentials"):
		return (&credentialsError{}).Error()
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	var oe *objectError
	if errors.As(err, &oe) {
		switch {
		case errors.Is(oe.err, fs.ErrNotExist):
			return oe.url + ": no such object"
		case errors.Is(oe.err, gcsfs.ErrObjectChanged):
			return oe.url + ": the object changed while it was read (a new generation was written); try again"
		}
	}
	return err.Error()
}

func statusOf(re *oauth2.RetrieveError) int {
	if re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// objectError is an error about one object, named by its URL.
type objectError struct {
	url string
	err error
}

func (e *objectError) Error() string { return e.url + ": " + e.err.Error() }
func (e *objectError) Unwrap() error { return e.err }

// objErr wraps err (if not nil) with the URL it is about.
func objErr(url string, err error) error {
	if err == nil {
		return nil
	}
	return &objectError{url: url, err: err}
}

// joinName joins a directory path and an entry name in a bucket.
func joinName(dir, name string) string {
	if dir == "." {
		return name
	}
	return path.Join(dir, name)
}
