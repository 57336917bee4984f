package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"google.golang.org/api/option"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/baseline"
	"github.com/zonalread/zonalread/internal/testserver"
)

const (
	bucketName = "bench"
	objectName = "object.bin" // the main patterns' object (-size)
	// readaheadID names the fsspec-like baseline (baseline.Readahead with
	// baseline.DefaultReadahead) in the reports and results.json.
	readaheadID = "readahead-5MiB"
)

// env is one profile's servers and the clients every strategy reads
// through. The three gcsfs filesystems share the gocloud bucket (and so
// its HTTP connection pool); the storage.Reader baseline has its own.
type env struct {
	prof   profile
	srv    *testserver.Server
	client *storage.Client // HTTP (XML API reads), for the one-stream baseline
	bucket *blob.Bucket    // gocloud gcsblob over HTTP
	grpc   *storage.Client // gRPC with bidi reads, for the MRD backend

	fsNoPrefetch, fsHTTP, fsMRD *gcsfs.FS
	fsHTTPHedge, fsMRDHedge     *gcsfs.FS // Options.Hedge on
}

// startEnv starts shaped servers holding the objects the patterns read.
// grpcConns > 0 dials the gRPC client with that many channels instead of
// the storage package's default (one).
func startEnv(ctx context.Context, pr profile, patterns []*pattern, grpcConns int) (e *env, err error) {
	e = &env{prof: pr}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.close())
		}
	}()
	if e.srv, err = testserver.Start(&testserver.Options{Buckets: []string{bucketName}}); err != nil {
		return e, err
	}
	objects := map[string][]byte{}
	for _, p := range patterns {
		objects[p.object] = p.data
	}
	for name, data := range objects {
		if _, err = e.srv.PutObject(bucketName, name, data); err != nil {
			return e, err
		}
	}
	if e.client, err = e.srv.HTTPClient(ctx); err != nil {
		return e, err
	}
	if e.bucket, err = e.srv.OpenBucket(ctx, bucketName); err != nil {
		return e, err
	}
	if e.grpc, err = dialGRPC(ctx, e.srv, grpcConns); err != nil {
		return e, err
	}
	newFS := func(o gcsfs.Options) (*gcsfs.FS, error) {
		o.BucketName = bucketName
		return gcsfs.New(ctx, e.bucket, &o)
	}
	if e.fsNoPrefetch, err = newFS(gcsfs.Options{Zonal: gcsfs.ZonalOff, DisablePrefetch: true}); err != nil {
		return e, err
	}
	if e.fsHTTP, err = newFS(gcsfs.Options{Zonal: gcsfs.ZonalOff}); err != nil {
		return e, err
	}
	// Without -grpc-conns the FS dials its own client, as a user's would:
	// one channel per downloader (PoolSize).
	if e.fsMRD, err = newFS(gcsfs.Options{Zonal: gcsfs.ZonalOn, GRPCClient: e.grpc, ClientOptions: e.srv.GRPCClientOptions()}); err != nil {
		return e, err
	}
	if e.fsHTTPHedge, err = newFS(gcsfs.Options{Zonal: gcsfs.ZonalOff, Hedge: true}); err != nil {
		return e, err
	}
	if e.fsMRDHedge, err = newFS(gcsfs.Options{Zonal: gcsfs.ZonalOn, GRPCClient: e.grpc, ClientOptions: e.srv.GRPCClientOptions(), Hedge: true}); err != nil {
		return e, err
	}
	e.srv.HTTP.SetShape(pr.Shape)
	e.srv.GRPC.SetShape(pr.Shape)
	// A hedging FS hedges once it has seen gcsfs.HedgeMinSamples times to
	// first byte: as an FS in use would have, it has seen them on this
	// link before the timed runs.
	for _, fsys := range []*gcsfs.FS{e.fsHTTPHedge, e.fsMRDHedge} {
		if err := warmHedging(ctx, fsys, int64(len(objects[objectName]))); err != nil {
			return e, err
		}
	}
	return e, nil
}

// warmHedging reads gcsfs.HedgeMinSamples bytes at spread offsets of the
// object through fsys, so its hedge delay is known.
func warmHedging(ctx context.Context, fsys *gcsfs.FS, size int64) error {
	f, err := fsys.OpenContext(ctx, objectName)
	if err != nil {
		return err
	}
	var one [1]byte
	for i := range int64(gcsfs.HedgeMinSamples) {
		if _, err = f.ReadAtContext(ctx, one[:], (i*7919+1)*(size/gcsfs.HedgeMinSamples/7919+1)%size); err != nil {
			break
		}
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("warm-up reads of a hedging FS: %w", err)
	}
	return nil
}

// dialGRPC returns nil (the FS then dials its own client, over gcsfs's
// pool of PoolSize channels), or with conns > 0 a client over a pool of
// conns channels (HTTP/2 connections).
func dialGRPC(ctx context.Context, srv *testserver.Server, conns int) (*storage.Client, error) {
	if conns <= 0 {
		return nil, nil
	}
	return storage.NewGRPCClient(ctx, append(srv.GRPCClientOptions(),
		option.WithGRPCConnectionPool(conns),
		storage.WithGRPCBidiReads(),
	)...)
}

func (e *env) close() error {
	var errs []error
	for _, f := range []*gcsfs.FS{e.fsNoPrefetch, e.fsHTTP, e.fsMRD, e.fsHTTPHedge, e.fsMRDHedge} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	if e.grpc != nil {
		errs = append(errs, e.grpc.Close())
	}
	if e.client != nil {
		errs = append(errs, e.client.Close())
	}
	if e.bucket != nil {
		errs = append(errs, e.bucket.Close())
	}
	if e.srv != nil {
		errs = append(errs, e.srv.Close())
	}
	return errors.Join(errs...)
}

// session is one strategy's open object. read returns len(dst) bytes of
// the object at off: in dst, or in a buffer the strategy allocated.
type session interface {
	read(ctx context.Context, dst []byte, off int64) ([]byte, error)
	close() error
}

// strategy is a way of reading the object.
type strategy struct {
	id, label, backend string
	open               func(ctx context.Context, e *env, object string) (session, error)
	fsys               func(e *env) *gcsfs.FS // the gcsfs FS used, if any
}

var strategies = []*strategy{
	{id: "one-stream", label: "one storage.Reader stream (reopened at each seek)", backend: "HTTP",
		open: func(_ context.Context, e *env, object string) (session, error) {
			return &streamSession{obj: e.client.Bucket(bucketName).Object(object)}, nil
		}},
	{id: readaheadID, label: "gocloud NewRangeReader + " + human(baseline.DefaultReadahead) + " readahead (fsspec-like)", backend: "HTTP",
		open: func(ctx context.Context, e *env, object string) (session, error) {
			a, err := e.bucket.Attributes(ctx, object)
			if err != nil {
				return nil, err
			}
			return readaheadSession{baseline.NewReadahead(e.bucket, object, a.Size, baseline.DefaultReadahead)}, nil
		}},
	fileStrategy("zonalread-noprefetch", "zonalread, prefetch off", "HTTP", func(e *env) *gcsfs.FS { return e.fsNoPrefetch }),
	fileStrategy("zonalread-http", "zonalread, prefetch on", "HTTP", func(e *env) *gcsfs.FS { return e.fsHTTP }),
	fileStrategy("zonalread-mrd", "zonalread, prefetch on", "gRPC MRD", func(e *env) *gcsfs.FS { return e.fsMRD }),
	fileStrategy("zonalread-http-hedge", "zonalread, prefetch on, hedged reads", "HTTP", func(e *env) *gcsfs.FS { return e.fsHTTPHedge }),
	fileStrategy("zonalread-mrd-hedge", "zonalread, prefetch on, hedged reads", "gRPC MRD", func(e *env) *gcsfs.FS { return e.fsMRDHedge }),
	vectoredStrategy("vectored-http", "HTTP", func(e *env) *gcsfs.FS { return e.fsHTTP }),
	vectoredStrategy("vectored-mrd", "gRPC MRD", func(e *env) *gcsfs.FS { return e.fsMRD }),
	readFileStrategy("readfile-http", "HTTP", func(e *env) *gcsfs.FS { return e.fsHTTP }),
	readFileStrategy("readfile-mrd", "gRPC MRD", func(e *env) *gcsfs.FS { return e.fsMRD }),
}

func strategyByID(id string) *strategy {
	for _, s := range strategies {
		if s.id == id {
			return s
		}
	}
	panic("zonalbench: no strategy " + id)
}

// streamSession is one storage.Reader from the read offset to the end of
// the object; a read anywhere else closes it and opens another there (what
// a naive io.ReadSeeker over a stream does). Read sequentially, it is the
// plain one-stream download.
type streamSession struct {
	obj *storage.ObjectHandle
	r   *storage.Reader
	pos int64
}

func (s *streamSession) read(ctx context.Context, dst []byte, off int64) ([]byte, error) {
	if s.r == nil || off != s.pos {
		if s.r != nil {
			s.r.Close() // abandoned mid-body: the connection goes with it
		}
		r, err := s.obj.NewRangeReader(ctx, off, -1)
		if err != nil {
			s.r = nil
			return nil, err
		}
		s.r, s.pos = r, off
	}
	n, err := io.ReadFull(s.r, dst)
	s.pos += int64(n)
	return dst, err
}

func (s *streamSession) close() error {
	if s.r == nil {
		return nil
	}
	return s.r.Close()
}

// readaheadSession is fsspec's default cache (baseline.Readahead).
type readaheadSession struct{ r *baseline.Readahead }

func (s readaheadSession) read(ctx context.Context, dst []byte, off int64) ([]byte, error) {
	n, err := s.r.ReadAt(ctx, dst, off)
	switch {
	case n == len(dst):
		err = nil
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return dst, err
}

func (readaheadSession) close() error { return nil }

// fileSession reads through a gcsfs File as an io.ReadSeeker: Seek when
// the read is not where the last one ended, then Read.
type fileSession struct {
	f   *gcsfs.File
	pos int64
}

func fileStrategy(id, label, backend string, fsys func(*env) *gcsfs.FS) *strategy {
	return &strategy{id: id, label: label, backend: backend, fsys: fsys,
		open: func(ctx context.Context, e *env, object string) (session, error) {
			f, err := fsys(e).OpenContext(ctx, object)
			if err != nil {
				return nil, err
			}
			return &fileSession{f: f}, nil
		}}
}

func (s *fileSession) read(_ context.Context, dst []byte, off int64) ([]byte, error) {
	if off != s.pos {
		if _, err := s.f.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
	}
	n, err := io.ReadFull(s.f, dst)
	s.pos = off + int64(n)
	return dst, err
}

func (s *fileSession) close() error { return s.f.Close() }

// readFileSession is gcsfs ReadFile: one buffer of the object's size,
// filled by Concurrency ranges fetched in parallel.
type readFileSession struct {
	fsys   *gcsfs.FS
	object string
}

func readFileStrategy(id, backend string, fsys func(*env) *gcsfs.FS) *strategy {
	return &strategy{id: id, label: "zonalread ReadFile (parallel ranges)", backend: backend, fsys: fsys,
		open: func(_ context.Context, e *env, object string) (session, error) {
			return readFileSession{fsys(e), object}, nil
		}}
}

func (s readFileSession) read(ctx context.Context, dst []byte, off int64) ([]byte, error) {
	data, err := s.fsys.ReadFileContext(ctx, s.object)
	if err != nil {
		return nil, err
	}
	if off != 0 || len(data) != len(dst) {
		return nil, fmt.Errorf("ReadFile returned %d bytes, want %d from offset %d", len(data), len(dst), off)
	}
	return data, nil
}

func (readFileSession) close() error { return nil }

// planner is a session told the pattern's reads before the first one, as a
// Parquet reader knows its row groups' column chunks from the footer.
type planner interface{ plan(ops []op) }

// vectoredSession reads the first op (the footer) alone, then fetches
// every later op with one File.ReadRanges call at the second read (the
// plan made from the footer) and serves the reads from its results.
type vectoredSession struct {
	f     *gcsfs.File
	ops   []op
	next  int // index of the next read in ops
	got   [][]byte
	batch bool
}

func vectoredStrategy(id, backend string, fsys func(*env) *gcsfs.FS) *strategy {
	return &strategy{id: id, label: "zonalread ReadRanges (vectored, after the first read)", backend: backend, fsys: fsys,
		open: func(ctx context.Context, e *env, object string) (session, error) {
			f, err := fsys(e).OpenContext(ctx, object)
			if err != nil {
				return nil, err
			}
			return &vectoredSession{f: f}, nil
		}}
}

func (s *vectoredSession) plan(ops []op) { s.ops = ops }

func (s *vectoredSession) read(ctx context.Context, dst []byte, off int64) ([]byte, error) {
	i := s.next
	s.next++
	if i >= len(s.ops) || s.ops[i] != (op{off, int64(len(dst))}) {
		return nil, fmt.Errorf("vectored session: read %d (%d bytes at %d) is not the planned one", i, len(dst), off)
	}
	if i == 0 {
		_, err := s.f.ReadAtContext(ctx, dst, off)
		return dst, err
	}
	if !s.batch {
		rs := make([]gcsfs.Range, 0, len(s.ops)-1)
		for _, o := range s.ops[1:] {
			rs = append(rs, gcsfs.Range{Offset: o.off, Length: o.n})
		}
		got, err := s.f.ReadRanges(ctx, rs)
		if err != nil {
			return nil, err
		}
		s.got, s.batch = got, true
	}
	return s.got[i-1], nil
}

func (s *vectoredSession) close() error { return s.f.Close() }
