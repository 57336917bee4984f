package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"cloud.google.com/go/storage"

	"github.com/zonalread/zonalread/gcsfs"
)

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
