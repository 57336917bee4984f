package gcsfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"gocloud.dev/blob"

	"github.com/zonalread/zonalread/mrdpool"
)

// errNotDir is ReadDir's error for an object, which is not a directory.
var errNotDir = errors.New("not a directory")

// bound returns the context of one metadata call (a stat, a listing page):
// it ends with ctx, with the stall timeout, or when the FS closes. Pass the
// call's error through boundErr with the same context.
func (f *FS) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	sctx, cancel := mrdpool.WithStallTimeout(ctx, f.opts.StallTimeout)
	stop := context.AfterFunc(f.ctx, cancel)
	return sctx, func() {
		stop()
		cancel()
	}
}

// boundErr maps the error of a call made under bound: fs.ErrClosed when the
// FS closed, ErrStalled when the stall timeout ended it.
func (f *FS) boundErr(ctx context.Context, err error, what string) error {
	if err == nil || err == io.EOF {
		return err
	}
	if f.ctx.Err() != nil {
		return fmt.Errorf("gcsfs: %s: %w", what, fs.ErrClosed)
	}
	return own(mrdpool.WrapStalled(ctx, err, what))
}

// statBlob is mrdpool.StatBlob bounded by the stall timeout and FS.Close.
func (f *FS) statBlob(ctx context.Context, name string) (mrdpool.ObjectInfo, error) {
	bctx, cancel := f.bound(ctx)
	defer cancel()
	info, err := mrdpool.StatBlob(bctx, f.bucket, name)
	return info, f.boundErr(bctx, err, "stat "+name)
}

// next is it.Next bounded by the stall timeout and FS.Close.
func (f *FS) next(ctx context.Context, it *blob.ListIterator, prefix string) (*blob.ListObject, error) {
	bctx, cancel := f.bound(ctx)
	defer cancel()
	obj, err := it.Next(bctx)
	return obj, f.boundErr(bctx, err, fmt.Sprintf("list %q", prefix))
}
