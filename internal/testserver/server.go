package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"gocloud.dev/gcp"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Options configures a Server. The zero Options (or a nil *Options) starts
// an unshaped server with both endpoints, no buckets and no faults.
type Options struct {
	// Shape is the initial shape of both endpoints; change it later with
	// Endpoint.SetShape.
	Shape Shape
	// Seed seeds the fault probabilities, so a run with probabilistic
	// fault rules is reproducible (for a given order of requests).
	Seed uint64
	// NoGRPC leaves the gRPC endpoint out: Server.GRPC is nil and
	// GRPCAddr returns "".
	NoGRPC bool
	// Buckets are created at start.
	Buckets []string
}

// Server is an in-process fake GCS: fake-gcs-server over HTTP on
// 127.0.0.1 and a google.storage.v2 gRPC server, sharing one object store.
// Its methods are safe for concurrent use.
type Server struct {
	// HTTP shapes, faults and counts the HTTP (JSON/XML API) endpoint.
	HTTP *Endpoint
	// GRPC shapes, faults and counts the gRPC endpoint; nil with
	// Options.NoGRPC.
	GRPC *Endpoint

	fake    *fakestorage.Server
	ln      net.Listener
	hs      *http.Server
	handler *shaper
	grpc    *grpcServer
	url     string

	baseCancel context.CancelFunc // cancels every HTTP request context
	closing    chan struct{}      // closed when Close starts; ends stalls
	serveDone  chan struct{}      // closed when hs.Serve returns
	closeOnce  sync.Once
	closeErr   error

	putMu   sync.Mutex // serializes PutObject so generations grow in order
	lastGen int64

	mu         sync.Mutex
	cache      map[objectKey]cachedData // live data read by the gRPC fake
	transports []*http.Transport        // of clients we made, closed by Close
}

type objectKey struct{ bucket, name string }

type cachedData struct {
	generation int64
	data       []byte
}

// Start starts a Server on 127.0.0.1 with ephemeral ports. A nil opts
// means the zero Options. Close it when done.
func Start(opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testserver: listen: %w", err)
	}
	host := ln.Addr().String()
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener: true,
		Scheme:     "http",
		// The storage client reads through the XML API at
		// http://<endpoint host>/<bucket>/<object>; fake-gcs-server only
		// routes those when the Host header is its PublicHost.
		PublicHost: host,
		// Location of resumable uploads.
		ExternalURL: "http://" + host,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("testserver: fake-gcs-server: %w", err)
	}
	s := &Server{
		HTTP:      newEndpoint(opts.Shape, opts.Seed),
		fake:      fake,
		ln:        ln,
		url:       "http://" + host,
		closing:   make(chan struct{}),
		serveDone: make(chan struct{}),
		cache:     map[objectKey]cachedData{},
	}
	for _, b := range opts.Buckets {
		s.CreateBucket(b)
	}

	baseCtx, cancel := context.WithCancel(context.Background())
	s.baseCancel = cancel
	s.handler = newShaper(s.HTTP, fake.HTTPHandler(), host, s.closing)
	s.hs = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ConnContext:       s.handler.connContext,
		ConnState:         s.handler.connState,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.serveDone)
		s.hs.Serve(ln)
	}()

	if !opts.NoGRPC {
		s.GRPC = newEndpoint(opts.Shape, opts.Seed^0x5bd1e9955bd1e995)
		g, err := newGRPCServer(s, s.GRPC)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("testserver: gRPC server: %w", err)
		}
		s.grpc = g
	}
	return s, nil
}

// Close stops both endpoints: in-flight HTTP responses get a moment to
// finish, stalled ones end at once, and then every connection is closed,
// including idle connections of the clients made by HTTPClient and
// OpenBucket. It waits for the server goroutines to exit. Close is
// idempotent; later calls return the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := s.hs.Shutdown(ctx)
		cancel()
		s.baseCancel()
		if err != nil {
			// Timed out on active connections; cut them.
			s.hs.Close()
		}
		<-s.serveDone
		s.handler.wait()
		if s.grpc != nil {
			s.grpc.close()
		}
		s.fake.Stop()
		s.CloseIdleConnections()
		s.mu.Lock()
		s.transports = nil
		s.cache = map[objectKey]cachedData{}
		s.mu.Unlock()
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		s.closeErr = err
	})
	return s.closeErr
}

// HTTPURL is the base URL of the HTTP endpoint, "http://127.0.0.1:port".
// The JSON API is under HTTPURL()+"/storage/v1/"; XML API object reads are
// at HTTPURL()+"/<bucket>/<object>".
func (s *Server) HTTPURL() string { return s.url }

// GRPCAddr is the host:port of the gRPC endpoint, "" with Options.NoGRPC.
func (s *Server) GRPCAddr() string {
	if s.grpc == nil {
		return ""
	}
	return s.grpc.addr()
}

// CreateBucket creates a bucket (without object versioning) unless it
// exists.
func (s *Server) CreateBucket(name string) {
	s.fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
}

// PutObject stores data as a new generation of bucket/name (creating the
// bucket if needed) and returns that generation. Each call gets a larger
// generation than the last, so an overwrite always replaces the live
// generation; the old one is gone (buckets have no versioning), and reads
// of it fail with not found. data is copied.
func (s *Server) PutObject(bucket, name string, data []byte) (generation int64, err error) {
	s.putMu.Lock()
	defer s.putMu.Unlock()
	// fake-gcs-server numbers generations by the microsecond clock, so two
	// quick writes can share one and the second becomes an in-place update
	// of the first. Number them ourselves.
	gen := max(time.Now().UnixMicro(), s.lastGen+1)
	err = s.fake.CreateObjectStreaming(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{
			BucketName:  bucket,
			Name:        name,
			ContentType: "application/octet-stream",
			Generation:  gen,
		},
		Content: data,
	}.StreamingObject())
	if err != nil {
		return 0, fmt.Errorf("testserver: put %s/%s: %w", bucket, name, err)
	}
	s.lastGen = gen
	if s.grpc != nil {
		// The gRPC fake's copy, made now rather than by its first read:
		// a timed first read would otherwise copy the whole object.
		s.mu.Lock()
		s.cache[objectKey{bucket, name}] = cachedData{generation: gen, data: bytes.Clone(data)}
		s.mu.Unlock()
	}
	return gen, nil
}

// DeleteObject deletes the live generation of bucket/name.
func (s *Server) DeleteObject(bucket, name string) error {
	if err := s.fake.Backend().DeleteObject(bucket, name); err != nil {
		return fmt.Errorf("testserver: delete %s/%s: %w", bucket, name, err)
	}
	s.mu.Lock()
	delete(s.cache, objectKey{bucket, name})
	s.mu.Unlock()
	return nil
}

// object implements objectStore over fake-gcs-server's backend. The
// returned Data is shared with other callers and must not be modified.
func (s *Server) object(bucket, name string, generation int64) (storedObject, error) {
	var (
		so  fakestorage.StreamingObject
		err error
	)
	if generation == 0 {
		so, err = s.fake.GetObjectStreaming(bucket, name)
	} else {
		so, err = s.fake.GetObjectWithGenerationStreaming(bucket, name, generation)
	}
	defer so.Close()
	if err != nil {
		return storedObject{}, errObjectNotFound
	}
	key := objectKey{bucket, name}
	s.mu.Lock()
	c, ok := s.cache[key]
	s.mu.Unlock()
	if !ok || c.generation != so.Generation || int64(len(c.data)) != so.Size {
		// The live content is a fresh reader over the backend's bytes;
		// keep one copy per object so that reading many ranges of a big
		// object does not copy it every time.
		data, err := io.ReadAll(so.Content)
		if err != nil {
			return storedObject{}, fmt.Errorf("testserver: read %s/%s: %w", bucket, name, err)
		}
		c = cachedData{generation: so.Generation, data: data}
		s.mu.Lock()
		s.cache[key] = c
		s.mu.Unlock()
	}
	updated := so.Updated
	if updated.IsZero() {
		updated = so.Created
	}
	return storedObject{
		Bucket:         bucket,
		Name:           name,
		Generation:     so.Generation,
		Metageneration: 1,
		ContentType:    so.ContentType,
		Updated:        updated,
		Data:           c.data,
	}, nil
}

// CloseIdleConnections closes the idle connections of every HTTP client
// this server made (HTTPClient, OpenBucket). With the clients' readers
// closed too, the server's connections then all end (Stats().ActiveStreams
// reaches 0), after which no request of theirs can still arrive: a test
// waits for that before it resets the counters, so a cancelled request
// still in a socket is not counted as the next client's.
func (s *Server) CloseIdleConnections() {
	s.mu.Lock()
	trs := slices.Clone(s.transports)
	s.mu.Unlock()
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
}

// newTransport returns a fresh HTTP transport for a client of the HTTP
// endpoint, tracked so that Close can drop its idle connections.
func (s *Server) newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Like the transport the storage client builds for itself: enough idle
	// connections for parallel readers to reuse them.
	tr.MaxIdleConnsPerHost = 100
	s.mu.Lock()
	s.transports = append(s.transports, tr)
	s.mu.Unlock()
	return tr
}

func (s *Server) httpClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.url + "/storage/v1/"),
		option.WithoutAuthentication(),
		storage.WithDisabledClientMetrics(),
	}
}

// HTTPClient returns a storage client for the HTTP endpoint, without
// authentication. Its reads use the XML API (GET /<bucket>/<object>), its
// other calls the JSON API. It has its own connection pool, so the
// per-connection shape applies to it alone.
//
// The caller must Close the client; its idle keep-alive connections would
// otherwise outlive it (Server.Close also drops them).
func (s *Server) HTTPClient(ctx context.Context) (*storage.Client, error) {
	opts := append(s.httpClientOptions(), option.WithHTTPClient(&http.Client{Transport: s.newTransport()}))
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("testserver: HTTP client: %w", err)
	}
	return c, nil
}

// GRPCClientOptions are the client options that reach the gRPC endpoint:
// its address, insecure transport, no authentication and no client
// metrics; for a caller that dials its own client (gcsfs.Options.
// ClientOptions), which must add storage.WithGRPCBidiReads for
// MultiRangeDownloaders. They are nil with Options.NoGRPC.
func (s *Server) GRPCClientOptions() []option.ClientOption {
	if s.grpc == nil {
		return nil
	}
	return []option.ClientOption{
		option.WithEndpoint(s.grpc.addr()),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithoutAuthentication(),
		storage.WithDisabledClientMetrics(),
	}
}

// GRPCClient returns a gRPC storage client for the gRPC endpoint, with
// bidi reads (MultiRangeDownloader) enabled, insecure transport and no
// authentication, over the storage package's default of one channel. It
// fails with Options.NoGRPC.
//
// The caller must Close the client.
func (s *Server) GRPCClient(ctx context.Context) (*storage.Client, error) {
	if s.grpc == nil {
		return nil, errors.New("testserver: server started with NoGRPC")
	}
	c, err := storage.NewGRPCClient(ctx, append(s.GRPCClientOptions(), storage.WithGRPCBidiReads())...)
	if err != nil {
		return nil, fmt.Errorf("testserver: gRPC client: %w", err)
	}
	return c, nil
}

// OpenBucket opens bucket name through gocloud's gcsblob over the HTTP
// endpoint (reads go through the XML API, like HTTPClient's).
//
// The caller must Close the bucket. gcsblob does not close the storage
// client it builds, so the bucket's idle connections stay open until
// Server.Close drops them.
func (s *Server) OpenBucket(ctx context.Context, name string) (*blob.Bucket, error) {
	return s.OpenBucketThrough(ctx, name, nil)
}

// OpenBucketThrough is OpenBucket with the client's transport wrapped by
// wrap (nil: not wrapped), e.g. in an mrdpool.CheckingTransport.
func (s *Server) OpenBucketThrough(ctx context.Context, name string, wrap func(http.RoundTripper) http.RoundTripper) (*blob.Bucket, error) {
	var tr http.RoundTripper = s.newTransport()
	if wrap != nil {
		tr = wrap(tr)
	}
	hc := &gcp.HTTPClient{Client: http.Client{Transport: tr}}
	b, err := gcsblob.OpenBucket(ctx, hc, name, &gcsblob.Options{ClientOptions: s.httpClientOptions()})
	if err != nil {
		return nil, fmt.Errorf("testserver: open bucket %s: %w", name, err)
	}
	return b, nil
}
