package mrdpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// BlobBackend reads an object of any gocloud bucket with one ranged GET per
// range (blob.Bucket.NewRangeReader). Its downloaders carry one range at a
// time, so a full pool makes callers wait: PoolSize bounds the concurrent
// requests to the object.
//
// The generation (on GCS) or modification time and size (elsewhere) seen by
// the first open are pinned: every range is read from that generation or
// fails with an error wrapping ErrObjectChanged.
type BlobBackend struct {
	bucket *blob.Bucket
	key    string
	retry  []storage.RetryOption

	mu   sync.Mutex
	info *ObjectInfo
}

// NewBlobBackend returns a backend for key in bucket. When info is non-nil
// it is the object's already-known info and opening a downloader does no
// I/O; otherwise the first open reads the object's attributes.
func NewBlobBackend(bucket *blob.Bucket, key string, info *ObjectInfo) *BlobBackend {
	b := &BlobBackend{bucket: bucket, key: key}
	if info != nil {
		i := *info
		b.info = &i
	}
	return b
}

// WithRetry sets the storage client's retry options for this object's
// ranged reads on GCS (ObjectHandle.Retryer), e.g. RetryOptions: they bound
// how long a read retries an unreachable server. Call it before the first
// Open. It returns b.
func (b *BlobBackend) WithRetry(opts ...storage.RetryOption) *BlobBackend {
	b.retry = opts
	return b
}

// Shareable implements Backend: a range reader carries one range at a time.
func (b *BlobBackend) Shareable() bool { return false }

// writesFinal: ranged HTTP reads carry no checksum, so bytes written are
// never written again (finalWrites).
func (b *BlobBackend) writesFinal() {}

// Open implements Backend.
func (b *BlobBackend) Open(ctx context.Context) (Downloader, ObjectInfo, error) {
	b.mu.Lock()
	info := b.info
	b.mu.Unlock()
	if info == nil {
		i, err := StatBlob(ctx, b.bucket, b.key)
		if err != nil {
			return nil, ObjectInfo{}, err
		}
		b.mu.Lock()
		if b.info == nil {
			b.info = &i
		}
		info = b.info
		b.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &blobDownloader{b: b, info: *info, ctx: ctx, cancel: cancel}, *info, nil
}

// StatBlob returns the info of key in bucket: size, modification time and,
// on GCS, generation. A missing object gives an error wrapping
// fs.ErrNotExist.
func StatBlob(ctx context.Context, bucket *blob.Bucket, key string) (ObjectInfo, error) {
	a, err := bucket.Attributes(ctx, key)
	if err != nil {
		return ObjectInfo{}, blobError(err, key)
	}
	if a.Size < 0 {
		return ObjectInfo{}, fmt.Errorf("%s: %w", key, errBadSize(a.Size))
	}
	info := ObjectInfo{Size: a.Size, ModTime: a.ModTime}
	var oa storage.ObjectAttrs
	var fi os.FileInfo
	switch {
	case a.As(&oa):
		info.Generation = oa.Generation
	case a.As(&fi):
		info.file = fi
	}
	return info, nil
}

// errBadSize is the error for an object size no object has (a size the
// server sent as a uint64 past MaxInt64 arrives negative).
func errBadSize(size int64) error {
	return fmt.Errorf("mrdpool: the server reported an object size of %d bytes: %w", size, ErrRange)
}

// blobError maps a gocloud error so errors.Is works with fs errors.
func blobError(err error, key string) error {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return fmt.Errorf("mrdpool: %s: %w (%w)", key, fs.ErrNotExist, err)
	case gcerrors.Canceled:
		if !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: %w", context.Canceled, err)
		}
	case gcerrors.DeadlineExceeded:
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
	}
	return err
}

type blobDownloader struct {
	b      *BlobBackend
	info   ObjectInfo
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex // orders Add's wg.Add before Close's wg.Wait
	closed bool
	wg     sync.WaitGroup
}

func (d *blobDownloader) Err() error { return nil }

// Close cancels ranges in flight and waits for them to end.
func (d *blobDownloader) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return nil
}

// Add starts the range in its own goroutine; on a closed downloader it
// calls done at once with an error wrapping fs.ErrClosed.
func (d *blobDownloader) Add(ctx context.Context, w io.Writer, off, n int64, done func(error)) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		done(fmt.Errorf("mrdpool: range reader of %q closed: %w", d.b.key, fs.ErrClosed))
		return
	}
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(d.ctx, cancel)
		defer stop()
		done(d.read(ctx, w, off, n))
	}()
}

func (d *blobDownloader) read(ctx context.Context, w io.Writer, off, n int64) error {
	gen := d.info.Generation
	opts := &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var file *os.File // fileblob hands out **os.File
		if d.info.file != nil && as(&file) {
			return d.checkSameFile(file)
		}
		var obj **storage.ObjectHandle
		if !as(&obj) {
			return nil
		}
		if gen != 0 {
			*obj = (*obj).Generation(gen)
		}
		if len(d.b.retry) > 0 {
			*obj = (*obj).Retryer(d.b.retry...)
		}
		return nil
	}}
	r, err := d.b.bucket.NewRangeReader(GuardBody(ctx), d.b.key, off, n, opts)
	if err != nil {
		if d.ctx.Err() != nil {
			return fmt.Errorf("mrdpool: downloader closed: %w", fs.ErrClosed)
		}
		if gcerrors.Code(err) == gcerrors.NotFound {
			return d.changed("no longer exists", err)
		}
		return blobError(err, d.b.key)
	}
	defer r.Close()
	if err := d.checkSame(r); err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		if d.ctx.Err() != nil {
			return fmt.Errorf("mrdpool: downloader closed: %w", fs.ErrClosed)
		}
		return blobError(err, d.b.key)
	}
	return nil
}

// checkSame fails a read that reached a different version of the object.
func (d *blobDownloader) checkSame(r *blob.Reader) error {
	var sr *storage.Reader
	if r.As(&sr) {
		if g := sr.Attrs.Generation; d.info.Generation != 0 && g != 0 && g != d.info.Generation {
			return d.changed(fmt.Sprintf("now has generation %d", g), nil)
		}
		if sr.Attrs.Size != d.info.Size {
			// The pinned generation, but not the pinned size: an info
			// known wrong (OpenVersion's caller), which would cut reads
			// short or send them past the end.
			return d.changed(fmt.Sprintf("has %d bytes, not %d", sr.Attrs.Size, d.info.Size), nil)
		}
		return nil
	}
	if r.Size() != d.info.Size || (!d.info.ModTime.IsZero() && !r.ModTime().Equal(d.info.ModTime)) {
		return d.changed(fmt.Sprintf("now has size %d, modified %v", r.Size(), r.ModTime()), nil)
	}
	return nil
}

// checkSameFile fails a read on a local-disk bucket whose opened file is
// not the one pinned: the object was overwritten (a new file renamed into
// place) even if size and modification time are unchanged.
func (d *blobDownloader) checkSameFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return blobError(err, d.b.key)
	}
	if !os.SameFile(fi, d.info.file) {
		return d.changed("was replaced by another file", nil)
	}
	return nil
}

func (d *blobDownloader) changed(what string, cause error) error {
	id := fmt.Sprintf("modified %v", d.info.ModTime)
	if d.info.Generation != 0 {
		id = fmt.Sprintf("generation %d", d.info.Generation)
	}
	if cause != nil {
		return fmt.Errorf("%w: %s (%s) %s: %w", ErrObjectChanged, d.b.key, id, what, cause)
	}
	return fmt.Errorf("%w: %s (%s) %s", ErrObjectChanged, d.b.key, id, what)
}
