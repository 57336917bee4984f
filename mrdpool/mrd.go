package mrdpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MRDBackend opens real gRPC storage.MultiRangeDownloaders: one bidi stream
// each, carrying many ranges at once, so a full pool shares busy ones.
// client must be a gRPC client made with storage.WithGRPCBidiReads().
//
// The first open pins the object's generation and size (a downloader
// reopened from a read handle reports size 0, so the size is kept here);
// later opens reuse the newest read handle to skip the metadata lookup.
type MRDBackend struct {
	client         *storage.Client
	bucket, object string
	opts           []storage.MRDOption
	retry          []storage.RetryOption

	mu     sync.Mutex
	info   *ObjectInfo
	handle storage.ReadHandle
}

// NewMRDBackend returns a backend for bucket/object. When info is non-nil
// its generation is pinned from the start.
func NewMRDBackend(client *storage.Client, bucket, object string, info *ObjectInfo, opts ...storage.MRDOption) *MRDBackend {
	b := &MRDBackend{client: client, bucket: bucket, object: object, opts: opts}
	if info != nil {
		i := *info
		b.info = &i
	}
	return b
}

// WithRetry sets the storage client's retry options for this object's
// downloaders (ObjectHandle.Retryer), e.g. RetryOptions: they bound how
// long an MRD retries opening and reconnecting its streams. Call it before
// the first Open. It returns b.
func (b *MRDBackend) WithRetry(opts ...storage.RetryOption) *MRDBackend {
	b.retry = opts
	return b
}

// Shareable implements Backend: one MRD stream carries many ranges.
func (b *MRDBackend) Shareable() bool { return true }

// Open implements Backend. The downloader outlives ctx (it is used by many
// reads); ctx bounds only the open itself: if ctx ends first, Open returns
// ctx.Err() and the late downloader is closed.
func (b *MRDBackend) Open(ctx context.Context) (Downloader, ObjectInfo, error) {
	b.mu.Lock()
	obj := b.client.Bucket(b.bucket).Object(b.object)
	if len(b.retry) > 0 {
		obj = obj.Retryer(b.retry...)
	}
	var pinned ObjectInfo
	if b.info != nil {
		pinned = *b.info
		if pinned.Generation != 0 {
			obj = obj.Generation(pinned.Generation)
		}
		if b.handle != nil {
			obj = obj.ReadHandle(b.handle)
		}
	}
	byHandle := b.handle != nil
	b.mu.Unlock()

	type result struct {
		mrd *storage.MultiRangeDownloader
		err error
	}
	// The downloader outlives ctx, so it gets a context of its own, which
	// its Close cancels; an open abandoned when ctx ends is cancelled at
	// once rather than left retrying in the background.
	mctx, mcancel := context.WithCancel(context.WithoutCancel(ctx))
	ch := make(chan result, 1)
	go func() {
		mrd, err := obj.NewMultiRangeDownloader(mctx, b.opts...)
		ch <- result{mrd, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		mcancel()
		if r := <-ch; r.mrd != nil {
			r.mrd.Close()
		}
		return nil, ObjectInfo{}, ctx.Err()
	}
	if r.err != nil {
		mcancel()
		if isNotFound(r.err) {
			if pinned.Generation != 0 {
				return nil, ObjectInfo{}, fmt.Errorf("%w: %s (generation %d) no longer exists: %w", ErrObjectChanged, b.object, pinned.Generation, r.err)
			}
			return nil, ObjectInfo{}, fmt.Errorf("mrdpool: %s: %w (%w)", b.object, fs.ErrNotExist, r.err)
		}
		return nil, ObjectInfo{}, fmt.Errorf("mrdpool: open %s: %w", b.object, r.err)
	}
	a := r.mrd.Attrs
	info := ObjectInfo{Size: a.Size, Generation: a.Generation, ModTime: a.LastModified}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.info == nil {
		b.info = &info
	} else {
		// Opened by generation or reopened by handle: a reopen by handle
		// may report a size of 0; an open without one reports the size of
		// the generation it opened, which must be the pinned one (a caller
		// may have pinned a size it knew wrong).
		sizeKnown := info.Size != 0 || !byHandle
		if (info.Generation != 0 && b.info.Generation != 0 && info.Generation != b.info.Generation) || (sizeKnown && info.Size != b.info.Size) {
			r.mrd.Close()
			mcancel()
			return nil, ObjectInfo{}, fmt.Errorf("%w: %s opened generation %d of %d bytes, pinned generation %d of %d bytes", ErrObjectChanged, b.object, info.Generation, info.Size, b.info.Generation, b.info.Size)
		}
		if b.info.Generation == 0 {
			b.info.Generation = info.Generation
		}
		info = *b.info
	}
	if h := r.mrd.GetHandle(); len(h) > 0 {
		b.handle = h
	}
	return &mrdDownloader{mrd: r.mrd, object: b.object, cancel: mcancel}, info, nil
}

type mrdDownloader struct {
	mrd    *storage.MultiRangeDownloader
	object string
	cancel context.CancelFunc // ends the MRD's context, after Close
}

// Add hands the range to the MRD's event loop; w is written there, done is
// called from a callback goroutine.
//
// storage v1.70.0 races in its clean-up if Add is called on an MRD in a
// permanent error state, so a broken downloader fails the range itself.
func (d *mrdDownloader) Add(_ context.Context, w io.Writer, off, n int64, done func(error)) {
	if err := d.mrd.Error(); err != nil {
		done(d.mapErr(err))
		return
	}
	d.mrd.Add(w, off, n, func(_, _ int64, err error) {
		done(d.mapErr(err))
	})
}

func (d *mrdDownloader) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "bad CRC"):
		// The storage package reports a chunk's CRC32C mismatch only by
		// message, after writing the chunk.
		return fmt.Errorf("%w: %s: %w", ErrChecksum, d.object, err)
	case isNotFound(err):
		return fmt.Errorf("%w: %s no longer exists: %w", ErrObjectChanged, d.object, err)
	}
	return fmt.Errorf("mrdpool: %s: %w", d.object, err)
}

func (d *mrdDownloader) Err() error { return d.mrd.Error() }

func (d *mrdDownloader) Close() error {
	defer d.cancel()
	if err := d.mrd.Close(); err != nil {
		return fmt.Errorf("mrdpool: close downloader for %s: %w", d.object, err)
	}
	return nil
}

// isNotFound recognises a missing object however the storage package
// reports it: ErrObjectNotExist, or a bare gRPC NOT_FOUND status from
// NewMultiRangeDownloader.
func isNotFound(err error) bool {
	if errors.Is(err, storage.ErrObjectNotExist) {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.NotFound {
		return true
	}
	return false
}
