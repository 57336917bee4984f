package gcsfs

import (
	"context"
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

// openReading opens name on a GCS bucket when the last file this FS read
// was read from its start: it stats the object and, at the same time, GETs
// its first prefetch window in Concurrency parts (one ranged GET each, in
// parallel, as the engine fetches any window), whose bodies become the
// file's first prefetched chunk, so the open and a first read at offset 0
// cost one round trip together and the window streams over parallel
// connections from the start. The size is not known when the GETs go out:
// a part past the object's end fails (a 416, no bytes). (The stat still
// gives the size, generation and modification time; a GET's headers carry
// only a whole-second time. A body is used only if its GET answered with
// the stat's generation.) It returns ok == false, having done nothing,
// when it does not apply (not GCS, no such history); the caller then stats
// the object.
func (f *FS) openReading(ctx context.Context, name string, poolOpts *mrdpool.Options) (*File, bool, error) {
	var gcs *storage.Client
	if f.start.Load() != startAtZero || !f.bucket.As(&gcs) {
		return nil, false, nil
	}
	w := int64(f.buffers.Fit(int(f.firstWindow())))
	bctx, bcancel := f.bound(ctx)
	defer bcancel()
	// The parts the engine would cut the window into (prefetch owns the
	// MinPartSize default).
	parts := byterange.Split(w, f.opts.Concurrency, defaults.Positive(f.opts.MinPartSize, prefetch.DefaultMinPartSize))
	gets := f.getParts(bctx, name, parts)
	info, err := f.statBlob(ctx, name)
	got, ttfb := gets.wait()
	if err != nil {
		closeParts(got)
		return nil, true, err
	}
	poolOpts.Info = &info
	backend := mrdpool.NewBlobBackend(f.bucket, name, &info).WithRetry(f.opts.retryOptions()...)
	file, err := f.newFile(name, info, mrdpool.New(backend, poolOpts))
	if err != nil {
		closeParts(got)
		return nil, true, err
	}
	adopt := f.sameObject(got, ttfb, info)
	if !file.engine.AdoptParts(adopt, f.opts.StallTimeout) {
		closeParts(adopt)
	}
	return file, true, nil
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
		w = max(int64(1)<<bits.Len64(uint64(last-1)), min(f.opts.BlockSize, w))
	}
	return max(w, 1)
}

// partGets are the ranged GETs of a window's parts, in flight.
type partGets struct {
	parts []byterange.Part
	got   chan partGot
}

// partGot is one GET's outcome: its body (nil when it failed) and its time
// to first byte.
type partGot struct {
	i    int
	body *cancelOnClose
	ttfb time.Duration
}

// getParts starts one ranged GET per part. A body outlives the open, so
// each GET has a context of its own, tied to bctx (the open's bounds)
// until its headers are in.
func (f *FS) getParts(bctx context.Context, name string, parts []byterange.Part) *partGets {
	g := &partGets{parts: parts, got: make(chan partGot, len(parts))}
	retry := f.opts.retryOptions()
	opts := &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var obj **storage.ObjectHandle
		if as(&obj) {
			*obj = (*obj).Retryer(retry...)
		}
		return nil
	}}
	for i, pt := range parts {
		go func() {
			rctx, rcancel := context.WithCancel(context.Background())
			stop := context.AfterFunc(bctx, rcancel)
			t0 := time.Now()
			r, err := f.bucket.NewRangeReader(rctx, name, pt.Off, pt.N, opts)
			ttfb := time.Since(t0)
			if !stop() || err != nil { // bctx ended first, or the GET failed
				if err == nil {
					r.Close()
				}
				rcancel()
				g.got <- partGot{i: i}
				return
			}
			g.got <- partGot{i: i, body: &cancelOnClose{r: r, cancel: rcancel}, ttfb: ttfb}
		}()
	}
	return g
}

// wait collects every GET (bounded: bctx ends them): the parts to adopt,
// in order, and each GET's time to first byte.
func (g *partGets) wait() ([]prefetch.AdoptedPart, []time.Duration) {
	parts := make([]prefetch.AdoptedPart, len(g.parts))
	ttfb := make([]time.Duration, len(g.parts))
	for range g.parts {
		r := <-g.got
		parts[r.i] = prefetch.AdoptedPart{Off: g.parts[r.i].Off, N: g.parts[r.i].N}
		if r.body != nil {
			parts[r.i].Body = r.body
		}
		ttfb[r.i] = r.ttfb
	}
	return parts, ttfb
}

// sameObject returns the parts cut to the object as the stat saw it: a
// body from another generation or size is closed and dropped, the parts
// past the end go, and the last is cut at the end. The first matching
// GET's time to first byte feeds the link estimate.
func (f *FS) sameObject(got []prefetch.AdoptedPart, ttfb []time.Duration, info mrdpool.ObjectInfo) []prefetch.AdoptedPart {
	var parts []prefetch.AdoptedPart
	observed := false
	for i, pt := range got {
		if pt.Body != nil {
			var sr *storage.Reader
			body := pt.Body.(*cancelOnClose)
			if !body.r.As(&sr) || sr.Attrs.Generation != info.Generation || body.r.Size() != info.Size || pt.Off >= info.Size {
				body.Close()
				pt.Body = nil
			} else if !observed {
				f.link.observe(ttfb[i], 0, 0)
				observed = true
			}
		}
		if pt.Off >= info.Size {
			continue
		}
		pt.N = min(pt.N, info.Size-pt.Off)
		parts = append(parts, pt)
	}
	return parts
}

// closeParts closes the bodies of parts not adopted.
func closeParts(parts []prefetch.AdoptedPart) {
	for _, pt := range parts {
		if pt.Body != nil {
			pt.Body.Close()
		}
	}
}

// cancelOnClose is a ranged GET's body for prefetch.Engine.Adopt: Abort
// ends the request's context (a blob.Reader may not be closed while a Read
// is in flight), Close closes the reader and ends the context.
type cancelOnClose struct {
	r      *blob.Reader
	cancel context.CancelFunc
}

func (c *cancelOnClose) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *cancelOnClose) Abort() { c.cancel() }

func (c *cancelOnClose) Close() error {
	err := c.r.Close()
	c.cancel()
	return err
}
