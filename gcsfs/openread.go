package gcsfs

import (
	"context"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"

	"github.com/zonalread/zonalread/mrdpool"
)

// How the files this FS opened began to be read, for an open to decide
// whether its stat may also fetch the first window (fsStartRead).
const (
	startUnknown   int32 = iota // no file read yet
	startAtZero                 // the last file read first at offset 0
	startElsewhere              // ... elsewhere, or by WriteTo or ReadFile
)

// noteFirstRead records how a file's first read began.
func (f *FS) noteFirstRead(atZero bool) {
	if atZero {
		f.start.Store(startAtZero)
	} else {
		f.start.Store(startElsewhere)
	}
}

// fileStart is a File's record of its first read.
type fileStart struct{ done atomic.Bool }

// first tells the FS how the file's first read began; later calls do
// nothing.
func (s *fileStart) first(f *FS, atZero bool) {
	if s.done.CompareAndSwap(false, true) {
		f.noteFirstRead(atZero)
	}
}

// openReading opens name on a GCS bucket when the last file this FS read
// was read from its start: it stats the object and, at the same time,
// GETs its first prefetch window, whose body becomes the file's first
// prefetched chunk, so the open and a first read at offset 0 cost one round
// trip together. (The stat still gives the size, generation and modification
// time; the GET's headers carry only a whole-second time. The window is
// used only if the GET answered with the stat's generation.) It returns ok
// == false, having done nothing, when it does not apply (not GCS, no such
// history); the caller then stats the object.
func (f *FS) openReading(ctx context.Context, name string, poolOpts *mrdpool.Options) (*File, bool, error) {
	var gcs *storage.Client
	if f.start.Load() != startAtZero || !f.bucket.As(&gcs) {
		return nil, false, nil
	}
	w := int64(f.buffers.Fit(int(min(max(f.link.window(f.opts.Concurrency), f.opts.BlockSize), f.opts.MaxPrefetch))))
	type got struct {
		r    *blob.Reader
		ttfb time.Duration
		err  error
	}
	// The body outlives the open: the GET gets a context of its own, tied
	// to the open's bounds until the headers are in.
	rctx, rcancel := context.WithCancel(context.Background())
	bctx, bcancel := f.bound(ctx)
	defer bcancel()
	stop := context.AfterFunc(bctx, rcancel)
	ch := make(chan got, 1)
	retry := f.opts.retryOptions()
	go func() {
		t0 := time.Now()
		r, err := f.bucket.NewRangeReader(rctx, name, 0, w, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
			var obj **storage.ObjectHandle
			if as(&obj) {
				*obj = (*obj).Retryer(retry...)
			}
			return nil
		}})
		ch <- got{r, time.Since(t0), err}
	}()
	info, err := f.statBlob(ctx, name)
	g := <-ch // bounded: bctx ends the GET
	if !stop() && g.err == nil {
		g.err = context.Cause(bctx)
	}
	body := (*cancelOnClose)(nil)
	if g.err == nil {
		body = &cancelOnClose{r: g.r, cancel: rcancel}
	} else {
		rcancel()
	}
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, true, err
	}
	poolOpts.Info = &info
	backend := mrdpool.NewBlobBackend(f.bucket, name, &info).WithRetry(retry...)
	file, err := f.newFile(name, info, mrdpool.New(backend, poolOpts))
	if body == nil {
		return file, true, err
	}
	var sr *storage.Reader
	same := body.r.As(&sr) && sr.Attrs.Generation == info.Generation && body.r.Size() == info.Size
	if same {
		f.link.observe(g.ttfb, 0, 0)
	}
	if err != nil || !same || !file.engine.Adopt(0, min(w, info.Size), body, f.opts.StallTimeout) {
		body.Close()
	}
	return file, true, err
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
