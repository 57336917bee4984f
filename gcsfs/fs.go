// Package gcsfs is an io/fs filesystem over a gocloud bucket — gs://
// (Rapid/zonal or standard), mem://, file:// — whose files read at the speed
// of the link.
//
// An open File pins the object's generation: every byte it returns comes
// from that generation, or the read fails with an error wrapping
// ErrObjectChanged. Reads go through a prefetch engine (sequential runs are
// fetched ahead in parallel parts; random reads fetch exactly their bytes)
// over a pool of downloaders: real gRPC multi-range downloaders on zonal
// buckets, ranged GETs elsewhere.
//
//	fsys, err := gcsfs.Open(ctx, "gs://my-bucket?zonal=true", nil)
//	...
//	defer fsys.Close()
//	data, err := fsys.ReadFile("path/to/object")
//
// # Names
//
// Object names map to fs paths as they are: "a/b/c" is file c in directory
// a/b. A bucket holds names no file system has, so these rules apply:
//
//   - A directory is implied by the objects below it: "a/b/c" makes "a" and
//     "a/b" directories. A placeholder object "dir/" (as the Cloud console
//     and gsutil create) makes "dir" a directory, empty if nothing else is
//     below it; it is never a file named "".
//   - An object whose name is not a valid fs path (fs.ValidPath fails: an
//     empty, "." or ".." element, as in "./z", "dot/./e", "x//y",
//     "up/../f", a leading or trailing "/", or invalid UTF-8) is left out of
//     listings and cannot be opened: Open and Stat of such a name fail with
//     fs.ErrInvalid. So is an object named ".", which is the root. The valid prefix above it ("dot", "x", "up") is still
//     a directory, possibly an empty one.
//   - Listings (ReadDir, a directory's ReadDir, Glob, fs.WalkDir) never
//     return ".", "..", "" or a name containing "/".
//   - When both "a" and "a/b" exist, the object wins: "a" is a file to
//     Stat, Open, ReadDir of the parent and fs.WalkDir; ReadDir("a") fails
//     with "not a directory", so a walk never reaches "a/b". Objects below a
//     shadowed name can still be opened and stat'ed by their full name.
package gcsfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs
	_ "gocloud.dev/blob/gcsblob"  // gs:// URLs
	_ "gocloud.dev/blob/memblob"  // mem:// URLs
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/zonalread/zonalread/directbuf"
)

// FS is a read-only filesystem over a bucket. It implements fs.FS,
// fs.StatFS, fs.ReadDirFS, fs.ReadFileFS and fs.GlobFS, and is safe for
// concurrent use.
type FS struct {
	bucket    *blob.Bucket
	ownBucket bool
	release   func() // drops the idle connections of a transport Open made
	grpc      *storage.Client
	ownGRPC   bool
	name      string
	zonal     bool
	opts      Options
	buffers   *directbuf.Pool
	ctx       context.Context // cancelled by Close: ends every call in flight
	cancel    context.CancelFunc

	mu     sync.Mutex
	closed bool
	files  map[*File]struct{}
	done   Stats // counters of closed files

	opened atomic.Int64
	link   linkEstimate // sizes the first prefetch window of each file
	start  atomic.Int32 // how the last file read began: startUnknown, startAtZero, startElsewhere
	// startSize is the size of the last file read from its start.
	startSize atomic.Int64
}

// Open opens the bucket at url and returns an FS over it. Supported:
// gs://bucket (query "zonal=auto|true|false" overrides opts.Zonal;
// "anonymous=true" reads without credentials), mem://, file:///dir. A
// gs:// bucket uses Application Default Credentials (an error wrapping
// ErrNoCredentials when there are none), or the emulators named by
// STORAGE_EMULATOR_HOST and STORAGE_EMULATOR_HOST_GRPC.
func Open(ctx context.Context, rawURL string, opts *Options) (*FS, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("gcsfs: bad bucket URL %q: %w", rawURL, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("gcsfs: bad bucket URL %q: no scheme (want gs://, mem://, file://)", rawURL)
	}
	o := opts.normalize()
	q := u.Query()
	if q.Has("zonal") {
		z, ok := ParseZonal(q.Get("zonal"))
		if !ok {
			return nil, fmt.Errorf("gcsfs: bad bucket URL %q: zonal=%q (want auto, true or false)", rawURL, q.Get("zonal"))
		}
		if u.Scheme != "gs" && z == ZonalOn {
			return nil, fmt.Errorf("gcsfs: bad bucket URL %q: zonal reads need a gs:// bucket", rawURL)
		}
		o.Zonal = z
		q.Del("zonal")
		u.RawQuery = q.Encode()
	}
	var b *blob.Bucket
	release := func() {}
	if u.Scheme == "gs" {
		if u.Host == "" {
			return nil, fmt.Errorf("gcsfs: bad bucket URL %q: no bucket name", rawURL)
		}
		o.BucketName = u.Host
		if b, release, err = openGCS(ctx, u, &o); err != nil {
			return nil, err
		}
	} else {
		if o.Zonal == ZonalOn {
			return nil, fmt.Errorf("gcsfs: zonal reads need a gs:// bucket, not %q", rawURL)
		}
		if b, err = blob.OpenBucket(ctx, u.String()); err != nil {
			return nil, fmt.Errorf("gcsfs: open %q: %w", rawURL, err)
		}
	}
	f, err := newFS(ctx, b, &o)
	if err != nil {
		b.Close()
		release()
		return nil, err
	}
	f.ownBucket, f.release = true, release
	return f, nil
}

// New returns an FS over a bucket the caller opened and keeps owning (Close
// does not close it). For zonal reads set opts.BucketName, and
// opts.GRPCClient or opts.ClientOptions. A GCS bucket's HTTP client should
// go through mrdpool.CheckingTransport, as Open's does: without it a
// response of another generation, a 200 that ignored Range, and the
// storage client's unbounded reopens of broken bodies reach the reads.
func New(ctx context.Context, bucket *blob.Bucket, opts *Options) (*FS, error) {
	o := opts.normalize()
	return newFS(ctx, bucket, &o)
}

func newFS(ctx context.Context, b *blob.Bucket, o *Options) (*FS, error) {
	f := &FS{bucket: b, name: o.BucketName, opts: *o, buffers: o.newBuffers(), files: map[*File]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	zonal, err := f.decideZonal(ctx)
	if err != nil {
		f.cancel()
		return nil, err
	}
	if zonal {
		if f.name == "" {
			return nil, errors.New("gcsfs: zonal reads need Options.BucketName")
		}
		f.grpc = o.GRPCClient
		if f.grpc == nil {
			// Client metrics are off: their export needs a project and
			// logs failures to stderr; pass your own GRPCClient for them.
			// One channel per downloader a file may open, so streams are
			// spread over PoolSize HTTP/2 connections rather than share
			// the storage package's single one (ClientOptions may say
			// otherwise: they come last).
			opts := append([]option.ClientOption{
				storage.WithGRPCBidiReads(), storage.WithDisabledClientMetrics(),
				option.WithGRPCConnectionPool(o.PoolSize),
			}, o.ClientOptions...)
			c, err := storage.NewGRPCClient(ctx, opts...)
			if err != nil {
				f.cancel()
				return nil, fmt.Errorf("gcsfs: gRPC client for zonal bucket %s: %w", f.name, err)
			}
			c.SetRetry(o.retryOptions()...)
			f.grpc, f.ownGRPC = c, true
		}
	}
	f.zonal = zonal
	return f, nil
}

// decideZonal applies Options.Zonal; auto asks GCS for the bucket's
// location type through the gocloud bucket's own client.
func (f *FS) decideZonal(ctx context.Context) (bool, error) {
	switch f.opts.Zonal {
	case ZonalOn:
		return true, nil
	case ZonalOff:
		return false, nil
	}
	var c *storage.Client
	if f.name == "" || !f.bucket.As(&c) {
		return false, nil // not GCS
	}
	bctx, cancel := f.bound(ctx)
	attrs, err := c.Bucket(f.name).Retryer(f.opts.retryOptions()...).Attrs(bctx)
	err = f.boundErr(bctx, err, "bucket "+f.name)
	cancel()
	if err != nil {
		if errors.Is(err, storage.ErrBucketNotExist) {
			return false, fmt.Errorf("gcsfs: bucket %s: %w", f.name, fs.ErrNotExist)
		}
		var ge *googleapi.Error
		if errors.As(err, &ge) && ge.Code == http.StatusForbidden {
			// A reader with object permissions only may not see the
			// bucket's metadata: read it as a standard bucket.
			return false, nil
		}
		return false, fmt.Errorf("gcsfs: bucket %s: %w", f.name, err)
	}
	return attrs.LocationType == "zone", nil
}

// dropPrefetched makes every open file let go of its prefetched windows
// (prefetch.Engine.DropPrefetched), for a WriteTo that finds the budget
// held by them: windows of files nobody reads any more are let go only by
// a next read or a Close, which a caller blocked in that WriteTo never
// makes. A file still read starts new windows as it needs them. It does no
// I/O and holds no lock while the engines drop.
func (f *FS) dropPrefetched() {
	f.mu.Lock()
	files := make([]*File, 0, len(f.files))
	for file := range f.files {
		files = append(files, file)
	}
	f.mu.Unlock()
	for _, file := range files {
		file.engine.DropPrefetched()
	}
}

// Zonal reports whether files are read through gRPC multi-range downloaders.
func (f *FS) Zonal() bool { return f.zonal }

// Bucket returns the underlying gocloud bucket.
func (f *FS) Bucket() *blob.Bucket { return f.bucket }

// Close cancels every call in flight (they end with errors wrapping
// fs.ErrClosed), closes every open file, then the gRPC client and the
// bucket if the FS opened them. It does not wait on the network.
// Operations after Close fail with errors wrapping fs.ErrClosed. Close is
// idempotent.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.cancel()
	files := make([]*File, 0, len(f.files))
	for file := range f.files {
		files = append(files, file)
	}
	f.mu.Unlock()
	var errs []error
	for _, file := range files {
		if err := file.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
			errs = append(errs, err)
		}
	}
	f.buffers.Close() // lets the idle buffers go; never fails
	if f.ownGRPC {
		if err := f.grpc.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if f.ownBucket {
		if err := f.bucket.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if f.release != nil {
		f.release()
	}
	return errors.Join(errs...)
}

func (f *FS) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// pathErr is the error of an operation on name. Lower packages' sentinels
// in err's chain get gcsfs's (own).
func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: own(err)}
}

// Stats are the read counters of a file or, summed, of an FS.
type Stats struct {
	Files        int64 // files opened (FS only)
	Asked        int64 // bytes asked for by reads
	Fetched      int64 // bytes requested from storage, hedges' second requests included
	Prefetched   int64 // of Fetched, bytes fetched ahead of the reads
	Served       int64 // bytes served from prefetched data
	Wasted       int64 // prefetched bytes dropped unread
	Requests     int64 // ranged requests issued (an open's first-window parts included)
	Waits        int64 // reads that waited for prefetched bytes in flight
	Downloaders  int64 // downloaders opened
	Replaced     int64 // broken downloaders replaced
	Retries      int64 // ranges resumed after an error
	Hedges       int64 // second requests of random reads slow to answer (Options.Hedge)
	HedgeWins    int64 // of Hedges, those that answered first
	BufferHigh   int64 // high-water mark of prefetch buffers (FS only)
	BufferBudget int64 // the prefetch budget (FS only)
	// BufferAllocated is the capacity of every prefetch and window buffer
	// ever allocated (FS only): about the budget for a long read, since
	// released buffers are reused.
	BufferAllocated int64
	// BufferReused is the capacity of buffer requests served by a released
	// buffer (FS only).
	BufferReused int64
	// HedgeDelay is how long a random read now waits for its first byte
	// before it is hedged: the Options.HedgeQuantile of the recent times
	// to first byte (FS only; 0 with Options.Hedge off, or before
	// HedgeMinSamples were seen).
	HedgeDelay time.Duration
}

func (s *Stats) add(o Stats) {
	s.Asked += o.Asked
	s.Fetched += o.Fetched
	s.Prefetched += o.Prefetched
	s.Served += o.Served
	s.Wasted += o.Wasted
	s.Requests += o.Requests
	s.Waits += o.Waits
	s.Downloaders += o.Downloaders
	s.Replaced += o.Replaced
	s.Retries += o.Retries
	s.Hedges += o.Hedges
	s.HedgeWins += o.HedgeWins
}

// Stats returns the counters of every file opened so far, closed or not.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	s := f.done
	for file := range f.files {
		s.add(file.Stats())
	}
	f.mu.Unlock()
	s.Files = f.opened.Load()
	bs := f.buffers.Stats()
	s.BufferHigh, s.BufferBudget = bs.HighWater, bs.Budget
	s.BufferAllocated, s.BufferReused = bs.Allocated, bs.Reused
	if f.opts.Hedge {
		s.HedgeDelay, _ = f.link.hedgeDelay(f.opts.HedgeQuantile)
	}
	return s
}
