package gcsfs

import (
	"context"
	"errors"
	"io"
	"math/bits"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"

	"github.com/zonalread/zonalread/internal/byterange"
	"github.com/zonalread/zonalread/internal/defaults"
	"github.com/zonalread/zonalread/mrdpool"
	"github.com/zonalread/zonalread/prefetch"
)

// How the files this FS opened began to be read, for an open to decide
// whether its stat may also fetch the first window (fsStartRead).
const (
	startUnknown   int32 = iota // no file read yet
	startAtZero                 // the last file read first at offset 0
	startElsewhere              // ... elsewhere, or by WriteTo or ReadFile
)

// noteFirstRead records how a file of size bytes was first read.
func (f *FS) noteFirstRead(atZero bool, size int64) {
	if atZero {
		f.startSize.Store(size)
		f.start.Store(startAtZero)
	} else {
		f.start.Store(startElsewhere)
	}
}

// fileStart is a File's record of its first read.
type fileStart struct{ done atomic.Bool }

// first tells the FS how the file's first read began; later calls do
// nothing.
func (s *fileStart) first(f *FS, atZero bool, size int64) {
	if s.done.CompareAndSwap(false, true) {
		f.noteFirstRead(atZero, size)
	}
}

// openReading opens name when the last file this FS read was read from
// its start: it stats the object and, at the same time, fetches its first
// prefetch window in Concurrency parts (one ranged request each, in
// parallel, as the engine fetches any window), whose bodies become the
// file's first prefetched chunk, so the open and a first read at offset 0
// cost one round trip together and the window streams over parallel
// connections from the start. On a zonal bucket the stat is the first
// multi-range downloader's open (and the others open alongside it:
// mrdpool Options.Warm) and the parts are one-shot gRPC reads, which
// carry the range in their first message; elsewhere on GCS the stat is a
// metadata GET and the parts ranged GETs. The size is not known when the
// parts go out: a part past the object's end fails (no bytes). (A part's
// headers carry only the size and generation; the stat gives the
// modification time too. A body is used only if its request answered with
// the stat's generation and size.) It returns ok == false, having done
// nothing, when it does not apply (no such history, or not GCS); the
// caller then opens as usual.
func (f *FS) openReading(ctx context.Context, name string, poolOpts *mrdpool.Options) (*File, bool, error) {
	if f.start.Load() != startAtZero {
		return nil, false, nil
	}
	var src readingSource
	if f.zonal {
		src = f.zonalReading(name, poolOpts)
	} else if s, ok := f.httpReading(name, poolOpts); ok {
		src = s
	} else {
		return nil, false, nil
	}
	w := int64(f.buffers.Fit(int(f.firstWindow())))
	bctx, bcancel := f.bound(ctx)
	defer bcancel()
	// The parts the engine would cut the window into.
	parts := byterange.Split(w, f.opts.Concurrency, f.minPartSize())
	gets := getParts(bctx, parts, src.get)
	info, pool, err := src.open(ctx)
	got := gets.wait()
	if err != nil {
		closeGot(got)
		return nil, true, err
	}
	file, err := f.newFile(name, info, pool)
	if err != nil {
		closeGot(got)
		return nil, true, err
	}
	file.openRequests.Store(int64(len(parts)))
	adopt := f.sameObject(got, parts, info)
	if !file.engine.AdoptParts(adopt, f.opts.StallTimeout) {
		closeParts(adopt)
	}
	return file, true, nil
}

// readingSource is how openReading reaches one kind of bucket: open stats
// the object and returns its pool; get starts a ranged read.
type readingSource struct {
	open func(ctx context.Context) (mrdpool.ObjectInfo, *mrdpool.Pool, error)
	get  rangeGet
}

// rangeGet starts a ranged read of [off, off+n) and returns its body with
// the generation and size of the object it reads.
type rangeGet func(ctx context.Context, off, n int64) (r io.ReadCloser, gen, size int64, err error)

// httpReading is the readingSource of a GCS bucket over HTTP (JSON and
// XML APIs); ok is false for other buckets.
func (f *FS) httpReading(name string, poolOpts *mrdpool.Options) (readingSource, bool) {
	var gcs *storage.Client
	if !f.bucket.As(&gcs) {
		return readingSource{}, false
	}
	retry := f.opts.retryOptions()
	opts := &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var obj **storage.ObjectHandle
		if as(&obj) {
			*obj = (*obj).Retryer(retry...)
		}
		return nil
	}}
	return readingSource{
		open: func(ctx context.Context) (mrdpool.ObjectInfo, *mrdpool.Pool, error) {
			return f.openBlob(ctx, name, poolOpts)
		},
		get: func(ctx context.Context, off, n int64) (io.ReadCloser, int64, int64, error) {
			// A broken body fails the part (its bytes are fetched again
			// through the pool) instead of being reopened for ever.
			r, err := f.bucket.NewRangeReader(mrdpool.GuardBody(ctx), name, off, n, opts)
			if err != nil {
				return nil, 0, 0, err
			}
			var sr *storage.Reader
			if !r.As(&sr) {
				r.Close()
				return nil, 0, 0, errors.New("gcsfs: not a GCS reader")
			}
			return r, sr.Attrs.Generation, r.Size(), nil
		},
	}, true
}

// zonalReading is the readingSource of a zonal bucket over gRPC.
func (f *FS) zonalReading(name string, poolOpts *mrdpool.Options) readingSource {
	retry := f.opts.retryOptions()
	return readingSource{
		open: func(ctx context.Context) (mrdpool.ObjectInfo, *mrdpool.Pool, error) {
			// The window's parts come from the one-shot reads; the
			// downloaders for the windows after it open alongside the
			// first.
			poolOpts.Warm = f.opts.Concurrency
			return f.openZonal(ctx, name, poolOpts)
		},
		get: func(ctx context.Context, off, n int64) (io.ReadCloser, int64, int64, error) {
			r, err := f.grpc.Bucket(f.name).Object(name).Retryer(retry...).NewRangeReader(ctx, off, n)
			if err != nil {
				return nil, 0, 0, err
			}
			return checksummed{r}, r.Attrs.Generation, r.Attrs.Size, nil
		},
	}
}

// checksummed marks a body whose bytes are trusted only once it has ended
// cleanly: a gRPC read checks each message's checksum after it has handed
// out the message's bytes.
type checksummed struct{ io.ReadCloser }

// minPartSize is Options.MinPartSize, or prefetch's default for it
// (prefetch owns that default).
func (f *FS) minPartSize() int64 {
	return defaults.Positive(f.opts.MinPartSize, prefetch.DefaultMinPartSize)
}

// firstWindow is what an open that fetches fetches: the link's
// bandwidth-delay product (BlockSize before it is known), up to
// MaxPrefetch, and no more than the power of two that holds the last file
// read from its start (but BlockSize), so that reading shards of one size
// costs few GETs past their end (each such part costs a request, not
// bytes).
func (f *FS) firstWindow() int64 {
	w := min(max(f.link.window(f.opts.Concurrency), f.opts.BlockSize), f.opts.MaxPrefetch)
	if last := f.startSize.Load(); last > 0 && last < w {
		w = min(w, max(int64(1)<<bits.Len64(uint64(last-1)), f.opts.BlockSize))
	}
	return w
}

// partGets are the ranged reads of a window's parts, in flight.
type partGets struct {
	parts []byterange.Part
	got   chan partGot
}

// partGot is one read's outcome: its body (nil when it failed), the
// generation and size of the object it reads, and its time to first
// byte.
type partGot struct {
	i         int
	body      *cancelOnClose
	gen, size int64
	ttfb      time.Duration
}

// getParts starts one ranged read per part. A body outlives the open, so
// each read has a context of its own, tied to bctx (the open's bounds)
// until its headers are in.
func getParts(bctx context.Context, parts []byterange.Part, get rangeGet) *partGets {
	g := &partGets{parts: parts, got: make(chan partGot, len(parts))}
	for i, pt := range parts {
		go func() {
			rctx, rcancel := context.WithCancel(context.Background())
			stop := context.AfterFunc(bctx, rcancel)
			t0 := time.Now()
			r, gen, size, err := get(rctx, pt.Off, pt.N)
			ttfb := time.Since(t0)
			if !stop() || err != nil { // bctx ended first, or the read failed
				if err == nil {
					r.Close()
				}
				rcancel()
				g.got <- partGot{i: i}
				return
			}
			g.got <- partGot{i: i, body: &cancelOnClose{r: r, cancel: rcancel}, gen: gen, size: size, ttfb: ttfb}
		}()
	}
	return g
}

// wait collects every read (bounded: bctx ends them), in part order.
func (g *partGets) wait() []partGot {
	got := make([]partGot, len(g.parts))
	for range g.parts {
		r := <-g.got
		got[r.i] = r
	}
	return got
}

// sameObject returns the parts to adopt, cut to the object as the stat saw
// it: a body from another generation or size is closed and dropped, the
// parts past the end go, and the last is cut at the end. The first
// matching read's time to first byte feeds the link estimate.
func (f *FS) sameObject(got []partGot, parts []byterange.Part, info mrdpool.ObjectInfo) []prefetch.AdoptedPart {
	var adopt []prefetch.AdoptedPart
	observed := false
	for i, g := range got {
		pt := prefetch.AdoptedPart{Off: parts[i].Off, N: parts[i].N}
		if pt.Off >= info.Size {
			closeBody(g.body)
			continue
		}
		pt.N = min(pt.N, info.Size-pt.Off)
		if g.body != nil && (g.gen != info.Generation || g.size != info.Size) {
			closeBody(g.body)
			g.body = nil
		}
		if g.body != nil {
			_, pt.CommitAtEnd = g.body.r.(checksummed)
			pt.Body = g.body
			if !observed {
				f.link.observe(mrdpool.RangeTiming{TTFB: g.ttfb})
				observed = true
			}
		}
		adopt = append(adopt, pt)
	}
	return adopt
}

func closeBody(b *cancelOnClose) {
	if b != nil {
		b.Close()
	}
}

// closeGot closes the bodies of reads not adopted.
func closeGot(got []partGot) {
	for _, g := range got {
		closeBody(g.body)
	}
}

// closeParts closes the bodies of parts not adopted.
func closeParts(parts []prefetch.AdoptedPart) {
	for _, pt := range parts {
		if pt.Body != nil {
			pt.Body.Close()
		}
	}
}

// cancelOnClose is a ranged read's body for prefetch.Engine.AdoptParts:
// Abort ends the request's context (a reader may not be closed while a
// Read is in flight), Close closes the reader and ends the context.
type cancelOnClose struct {
	r      io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *cancelOnClose) Abort() { c.cancel() }

func (c *cancelOnClose) Close() error {
	err := c.r.Close()
	c.cancel()
	return err
}
