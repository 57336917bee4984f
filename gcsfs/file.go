package gcsfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonalread/zonalread/directbuf"
	"github.com/zonalread/zonalread/internal/byterange"
	"github.com/zonalread/zonalread/mrdpool"
	"github.com/zonalread/zonalread/prefetch"
)

// File is an open object. It implements fs.File, io.Reader, io.ReaderAt,
// io.Seeker and io.WriterTo; ReadAt is safe for concurrent use, the
// offset-moving methods (Read, Seek, WriteTo) are serialized. Close may be
// called while reads are in flight: they end at once with errors wrapping
// fs.ErrClosed.
type File struct {
	fsys   *FS
	name   string
	info   mrdpool.ObjectInfo
	pool   *mrdpool.Pool
	engine *prefetch.Engine
	ctx    context.Context // cancelled by Close: ends every call in flight
	cancel context.CancelFunc
	seq    chan struct{} // one slot: serializes Read, Seek and WriteTo
	start  fileStart     // tells the FS how the first read began
	// openRequests is the ranged requests the open made (its first
	// window's parts).
	openRequests atomic.Int64

	mu     sync.Mutex // guards off and closed; never held across I/O
	off    int64
	closed bool
}

var (
	_ fs.File     = (*File)(nil)
	_ io.ReaderAt = (*File)(nil)
	_ io.Seeker   = (*File)(nil)
	_ io.WriterTo = (*File)(nil)
)

// Open implements fs.FS. A directory opens as an fs.ReadDirFile.
func (f *FS) Open(name string) (fs.File, error) {
	if name == "." {
		if f.isClosed() {
			return nil, pathErr("open", name, fs.ErrClosed)
		}
		return f.openDir(context.Background(), name)
	}
	file, err := f.OpenContext(context.Background(), name)
	if err == nil {
		return file, nil
	}
	var pe *fs.PathError
	if errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe) && pe.Op == "open" {
		if d, derr := f.openDir(context.Background(), name); derr == nil {
			return d, nil
		}
	}
	return nil, err
}

// OpenContext opens the object name for reading and pins its generation.
// ctx bounds the open only. Errors are *fs.PathError wrapping
// fs.ErrInvalid (bad name), fs.ErrNotExist, fs.ErrClosed or ctx's error.
//
// The open costs one round trip (on a zonal bucket the first multi-range
// downloader's open is the stat). When the last file this FS read was read
// from its start, a first read at offset 0 costs none more: on GCS the
// open fetches the first prefetch window, in parallel parts, at the same
// time as its stat. When files are read elsewhere first, the open fetches
// no data.
func (f *FS) OpenContext(ctx context.Context, name string) (*File, error) {
	return f.openFile(ctx, name, true)
}

// openFile is OpenContext; mayFetch lets the open fetch the first window
// with its stat.
func (f *FS) openFile(ctx context.Context, name string, mayFetch bool) (*File, error) {
	if err := f.mayOpen(ctx, name); err != nil {
		return nil, err
	}
	poolOpts := f.poolOptions(name)
	if mayFetch {
		if file, ok, err := f.openReading(ctx, name, poolOpts); ok {
			if err != nil {
				return nil, pathErr("open", name, err)
			}
			return file, nil
		}
	}
	if f.zonal {
		info, pool, err := f.openZonal(ctx, name, poolOpts)
		if err != nil {
			return nil, pathErr("open", name, err)
		}
		return f.newFile(name, info, pool)
	}
	info, pool, err := f.openBlob(ctx, name, poolOpts)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return f.newFile(name, info, pool)
}

// mayOpen fails an open of name that cannot start: a bad name, a closed
// FS, a done ctx.
func (f *FS) mayOpen(ctx context.Context, name string) error {
	if !fs.ValidPath(name) || name == "." {
		return pathErr("open", name, fs.ErrInvalid)
	}
	if f.isClosed() {
		return pathErr("open", name, fs.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return pathErr("open", name, err)
	}
	return nil
}

// poolOptions are the options of the pool of a file of this FS.
func (f *FS) poolOptions(name string) *mrdpool.Options {
	o := &mrdpool.Options{
		PoolSize: f.opts.PoolSize, Retries: f.opts.Retries,
		StallTimeout: f.opts.StallTimeout, Logger: f.opts.Logger, Object: name,
		Observe: f.link.observe,
	}
	if f.opts.Hedge {
		q := f.opts.HedgeQuantile
		o.HedgeDelay = func() (time.Duration, bool) { return f.link.hedgeDelay(q) }
	}
	return o
}

// openBlob stats name on a bucket read through gocloud (range readers)
// and returns its pool, which checks every range against that stat.
func (f *FS) openBlob(ctx context.Context, name string, poolOpts *mrdpool.Options) (mrdpool.ObjectInfo, *mrdpool.Pool, error) {
	info, err := f.statBlob(ctx, name)
	if err != nil {
		return info, nil, err
	}
	return info, f.pinnedPool(name, info, poolOpts), nil
}

// pinnedPool returns the pool of name at a version already known (info),
// which it pins without a request: on a zonal bucket over multi-range
// downloaders opened at info's generation, elsewhere over range readers
// that check each response against info.
func (f *FS) pinnedPool(name string, info mrdpool.ObjectInfo, poolOpts *mrdpool.Options) *mrdpool.Pool {
	poolOpts.Info = &info
	var backend mrdpool.Backend
	if f.zonal {
		backend = mrdpool.NewMRDBackend(f.grpc, f.name, name, &info).WithRetry(f.opts.retryOptions()...)
	} else {
		backend = mrdpool.NewBlobBackend(f.bucket, name, &info).WithRetry(f.opts.retryOptions()...)
	}
	return mrdpool.New(backend, poolOpts)
}

// openZonal opens name's pool on a zonal bucket: the first multi-range
// downloader's open returns the object's size and generation, so it is
// the stat, and a first read then costs no extra round trip. An object
// large enough for a read to span Concurrency parts has the pool's other
// streams opened now, in the background (mrdpool Pool.Warm), so that its
// first parallel read (a window, ReadRanges after a footer read) finds
// them open rather than wait a round trip for their opens; a smaller one
// opens streams as reads need them.
func (f *FS) openZonal(ctx context.Context, name string, poolOpts *mrdpool.Options) (mrdpool.ObjectInfo, *mrdpool.Pool, error) {
	backend := mrdpool.NewMRDBackend(f.grpc, f.name, name, nil).WithRetry(f.opts.retryOptions()...)
	pool := mrdpool.New(backend, poolOpts)
	octx, cancel := f.bound(ctx)
	defer cancel()
	info, err := pool.Info(octx)
	if err = f.boundErr(octx, err, "open "+name); err != nil {
		pool.Close()
		return info, nil, err
	}
	if info.Size/int64(f.opts.Concurrency) >= f.minPartSize() {
		pool.Warm(f.opts.Concurrency)
	}
	return info, pool, nil
}

// newFile wraps an open pool in a File with its prefetch engine.
func (f *FS) newFile(name string, info mrdpool.ObjectInfo, pool *mrdpool.Pool) (*File, error) {
	engine := prefetch.New(pool, info.Size, &prefetch.Options{
		BlockSize: f.opts.BlockSize,
		// The link's bandwidth-delay product as this FS's reads measured
		// it (BlockSize until they have), and a read from the start
		// prefetches at once: a small object is read in a few round
		// trips, and a ramp from 1 MiB would cost most of them.
		FirstWindow: f.link.window(f.opts.Concurrency),
		StartAtZero: true,
		MaxPrefetch: f.opts.MaxPrefetch,
		Concurrency: f.opts.Concurrency,
		MinPartSize: f.opts.MinPartSize,
		Disabled:    f.opts.DisablePrefetch,
		Buffers:     f.buffers,
	})
	file := &File{fsys: f, name: name, info: info, pool: pool, engine: engine, seq: make(chan struct{}, 1)}
	file.ctx, file.cancel = context.WithCancel(context.Background())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		file.cancel()
		engine.Close()
		pool.Close()
		return nil, pathErr("open", name, fs.ErrClosed)
	}
	f.files[file] = struct{}{}
	f.opened.Add(1)
	return file, nil
}

// Name returns the object's name.
func (fl *File) Name() string { return fl.name }

// Size returns the object's size at open.
func (fl *File) Size() int64 { return fl.info.Size }

// Generation returns the pinned GCS generation (0 on other buckets).
func (fl *File) Generation() int64 { return fl.info.Generation }

// Stat implements fs.File.
func (fl *File) Stat() (fs.FileInfo, error) {
	return fileInfo{name: baseName(fl.name), size: fl.info.Size, mod: fl.info.ModTime, gen: fl.info.Generation}, nil
}

// Stats returns the file's read counters.
func (fl *File) Stats() Stats {
	e, p := fl.engine.Stats(), fl.pool.Stats()
	return Stats{
		Asked: e.Asked, Fetched: e.Fetched + p.HedgeBytes, Prefetched: e.Prefetched, Served: e.Served,
		Wasted: e.Wasted, Requests: p.Ranges + fl.openRequests.Load(), Waits: e.Waits,
		Downloaders: p.Opened, Replaced: p.Replaced, Retries: p.Retries,
		Hedges: p.Hedges, HedgeWins: p.HedgeWins,
	}
}

// lockSeq takes the file's sequence slot for an offset-moving call. It
// waits for the call before it (which the stall timeout bounds), for ctx,
// or for Close.
func (fl *File) lockSeq(ctx context.Context, op string) error {
	select {
	case fl.seq <- struct{}{}:
	case <-ctx.Done():
		return pathErr(op, fl.name, ctx.Err())
	case <-fl.ctx.Done():
		return pathErr(op, fl.name, fs.ErrClosed)
	}
	if err := fl.checkOpen(ctx, op); err != nil {
		fl.unlockSeq()
		return err
	}
	return nil
}

func (fl *File) unlockSeq() { <-fl.seq }

// offset returns the current offset.
func (fl *File) offset() int64 {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.off
}

func (fl *File) setOffset(off int64) {
	fl.mu.Lock()
	fl.off = off
	fl.mu.Unlock()
}

// checkOpen fails a call on a closed file, or whose ctx has already ended
// (which then reads nothing, even bytes already prefetched).
func (fl *File) checkOpen(ctx context.Context, op string) error {
	fl.mu.Lock()
	closed := fl.closed
	fl.mu.Unlock()
	if closed {
		return pathErr(op, fl.name, fs.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return pathErr(op, fl.name, err)
	}
	return nil
}

// opContext returns the context of one call: ended by ctx or by Close.
func (fl *File) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(fl.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// Read implements io.Reader.
func (fl *File) Read(p []byte) (int, error) { return fl.ReadContext(context.Background(), p) }

// ReadContext is Read bounded by ctx: if ctx ends first it returns
// ctx.Err() and leaves the offset unchanged.
func (fl *File) ReadContext(ctx context.Context, p []byte) (int, error) {
	if err := fl.lockSeq(ctx, "read"); err != nil {
		return 0, err
	}
	defer fl.unlockSeq()
	if len(p) == 0 {
		return 0, nil
	}
	off := fl.offset()
	if off >= fl.info.Size {
		return 0, io.EOF
	}
	fl.start.first(fl.fsys, off == 0, fl.info.Size)
	ctx, done := fl.opContext(ctx)
	defer done()
	n, err := fl.engine.Read(ctx, p, off)
	fl.setOffset(off + int64(n))
	if err == io.EOF && n > 0 {
		err = nil // io.Reader: EOF comes on the next call
	}
	return n, fl.wrap("read", err)
}

// ReadAt implements io.ReaderAt.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	return fl.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext is ReadAt bounded by ctx. A negative offset fails with an
// error wrapping fs.ErrInvalid; a read past the end returns io.EOF.
func (fl *File) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if err := fl.checkOpen(ctx, "read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", fl.name, fmt.Errorf("negative offset %d: %w", off, fs.ErrInvalid))
	}
	if len(p) > 0 {
		// A ReadAt at 0 is as often a header as a scan: it does not
		// make the next open fetch a window.
		fl.start.first(fl.fsys, false, fl.info.Size)
	}
	ctx, done := fl.opContext(ctx)
	defer done()
	n, err := fl.engine.ReadAt(ctx, p, off)
	return n, fl.wrap("read", err)
}

// wrap puts non-EOF errors in a PathError, keeping the chain. Any error of
// a call cut short by Close wraps fs.ErrClosed.
func (fl *File) wrap(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errors.Is(err, fs.ErrClosed) || fl.ctx.Err() != nil {
		return pathErr(op, fl.name, fs.ErrClosed)
	}
	return pathErr(op, fl.name, err)
}

// Seek implements io.Seeker. Seeking past the end is allowed (reads there
// return io.EOF); a negative result fails with an error wrapping
// fs.ErrInvalid and leaves the offset unchanged. It waits for a Read or
// WriteTo in flight.
func (fl *File) Seek(offset int64, whence int) (int64, error) {
	if err := fl.lockSeq(context.Background(), "seek"); err != nil {
		return 0, err
	}
	defer fl.unlockSeq()
	var abs int64
	ok := true
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs, ok = byterange.Add(fl.offset(), offset)
	case io.SeekEnd:
		abs, ok = byterange.Add(fl.info.Size, offset)
	default:
		return 0, pathErr("seek", fl.name, fmt.Errorf("bad whence %d: %w", whence, fs.ErrInvalid))
	}
	if !ok {
		return 0, pathErr("seek", fl.name, fmt.Errorf("position overflows an int64: %w", fs.ErrInvalid))
	}
	if abs < 0 {
		return 0, pathErr("seek", fl.name, fmt.Errorf("negative position %d: %w", abs, fs.ErrInvalid))
	}
	fl.setOffset(abs)
	return abs, nil
}

// WriteTo implements io.WriterTo: it writes the object from the current
// offset to the end into w and moves the offset to the end.
func (fl *File) WriteTo(w io.Writer) (int64, error) {
	return fl.WriteToContext(context.Background(), w)
}

// WriteToContext is WriteTo bounded by ctx. The rest of the object is
// fetched a window at a time (at most MaxPrefetch bytes, split into
// Concurrency ranges fetched in parallel into one buffer from the FS's
// budget) while the previous window is written to w, so memory stays
// bounded for any object size.
//
// It returns the bytes written to w — always the object's bytes from the
// offset on, in order — and the offset moves by as many. Unless it wrote
// everything, the error is non-nil: ctx's error if ctx ended, one wrapping
// fs.ErrClosed after Close, ErrStalled, or the fetch's or w's error.
func (fl *File) WriteToContext(ctx context.Context, w io.Writer) (int64, error) {
	if err := fl.lockSeq(ctx, "read"); err != nil {
		return 0, err
	}
	defer fl.unlockSeq()
	off := fl.offset()
	fl.start.first(fl.fsys, false, fl.info.Size) // fetched apart from the prefetch window
	ctx, done := fl.opContext(ctx)
	defer done()
	n, err := fl.writeRange(ctx, w, off, max(0, fl.info.Size-off))
	fl.setOffset(off + n)
	return n, fl.wrap("read", err)
}

// WriteRangeContext writes [off, off+n) of the object into w, fetched like
// WriteToContext (windows of parallel ranges, one written while the next
// fills), without moving the file's offset. It fetches nothing past the
// range. A range outside the object fails with an error wrapping
// fs.ErrInvalid. Like WriteToContext, it returns fewer than n bytes only
// with a non-nil error.
func (fl *File) WriteRangeContext(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	if err := fl.checkOpen(ctx, "read"); err != nil {
		return 0, err
	}
	if !byterange.Within(off, n, fl.info.Size) {
		return 0, pathErr("read", fl.name, fmt.Errorf("range of %d bytes at %d outside the %d-byte object: %w", n, off, fl.info.Size, fs.ErrInvalid))
	}
	fl.start.first(fl.fsys, false, fl.info.Size) // fetched apart from the prefetch window
	ctx, done := fl.opContext(ctx)
	defer done()
	written, err := fl.writeRange(ctx, w, off, n)
	return written, fl.wrap("read", err)
}

// window is one filled buffer of writeRange, or the error that ended the
// fetches.
type window struct {
	buf  []byte
	done func()
	err  error
}

// writeRange streams [off, off+n) into w, double-buffered: a producer
// fills windows while the caller's goroutine writes the previous one. Every
// window the producer makes, filled or failed, reaches the writer loop, so
// no error is dropped: the result is (n, nil) or (bytes written, non-nil).
func (fl *File) writeRange(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	// At least a byte: a budget under 2 bytes would make 0-byte windows.
	size := max(min(n, fl.fsys.opts.MaxPrefetch, fl.fsys.buffers.Budget()/2), 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	windows := make(chan window, 1) // one window written while the next one fills
	go func() {
		defer close(windows)
		// The loop below drains windows until it is closed, so a send
		// never blocks for good, even after ctx ends.
		for pos := off; pos < off+n; pos += size {
			k := min(size, off+n-pos)
			b, err := fl.windowBuffer(ctx, int(k))
			if err != nil {
				windows <- window{err: err}
				return
			}
			err = fl.engine.ReadDirect(ctx, b.Bytes(), pos)
			windows <- window{buf: b.Bytes(), done: b.Release, err: err}
			if err != nil {
				return
			}
		}
	}()
	var written int64
	var werr error
	for win := range windows {
		if werr == nil {
			werr = win.err
			if werr == nil {
				k, err := w.Write(win.buf)
				written += int64(k)
				if err == nil && k < len(win.buf) {
					err = io.ErrShortWrite
				}
				werr = err
			}
			if werr != nil {
				cancel()
			}
		}
		if win.done != nil {
			win.done()
		}
	}
	if werr == nil && written < n {
		// Unreachable by the loop's construction; never report a short
		// write as success.
		werr = fmt.Errorf("gcsfs: wrote %d of %d bytes: %w", written, n, io.ErrShortWrite)
	}
	return written, werr
}

// windowBuffer returns a buffer of k bytes for a window of writeRange: at
// once if the budget has room, else once the FS's files have let go of
// their prefetched windows (FS.dropPrefetched) and enough memory is
// released. Waiting for their readers instead hung a caller that read a
// file's head and then copied the rest (its own window held the budget)
// or that left other files open, read a little (their windows held it).
// Only other writeRange windows, which their own loops release, can then
// hold it.
func (fl *File) windowBuffer(ctx context.Context, k int) (*directbuf.Buffer, error) {
	if b, ok := fl.fsys.buffers.TryGet(k); ok {
		return b, nil
	}
	fl.fsys.dropPrefetched()
	return fl.fsys.buffers.Get(ctx, k)
}

// Close implements fs.File: it cancels every call in flight on the file
// (they end with errors wrapping fs.ErrClosed) and its prefetches, closes
// its downloaders and returns their errors. It does not wait on the
// network. A second Close fails with an error wrapping fs.ErrClosed.
func (fl *File) Close() error {
	fl.mu.Lock()
	if fl.closed {
		fl.mu.Unlock()
		return pathErr("close", fl.name, fs.ErrClosed)
	}
	fl.closed = true
	fl.mu.Unlock()
	fl.cancel()
	fl.engine.Close()
	err := fl.pool.Close()
	f := fl.fsys
	f.mu.Lock()
	delete(f.files, fl)
	f.done.add(fl.Stats())
	f.mu.Unlock()
	if err != nil {
		return pathErr("close", fl.name, err)
	}
	return nil
}

// ObjectMeta is what an object's fs.FileInfo.Sys returns.
type ObjectMeta struct {
	Generation int64 // GCS generation; 0 on other buckets
}

// fileInfo is the fs.FileInfo of an object or implied directory.
type fileInfo struct {
	name string
	size int64
	mod  time.Time
	gen  int64
	dir  bool
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) ModTime() time.Time { return i.mod }
func (i fileInfo) IsDir() bool        { return i.dir }

// Sys returns an ObjectMeta for an object, nil for a directory.
func (i fileInfo) Sys() any {
	if i.dir {
		return nil
	}
	return ObjectMeta{Generation: i.gen}
}
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
