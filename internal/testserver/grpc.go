package testserver

// The gRPC fake: google.storage.v2.Storage/BidiReadObject and GetObject,
// enough for the real storage client's MultiRangeDownloader, the bidi
// NewRangeReader path and ObjectHandle.Attrs.
//
// No generated google.storage.v2 package is usable here (storagepb is
// internal to the storage module; genproto's old copy panics at init next to
// it), so the message types are looked up by name in
// protoregistry.GlobalTypes, where the storage module registers them because
// it is linked in, and built and read through protoreflect. The messages made
// with MessageType.New are the storage module's own generated Go types, so
// the default gRPC proto codec marshals them as it does any proto.Message.
//
// # What the client (cloud.google.com/go/storage v1.70.0) does
//
// Client options that work (see Server.GRPCClient in server.go and
// newGRPCTestClient in grpc_test.go):
//
//	storage.NewGRPCClient(ctx,
//		storage.WithGRPCBidiReads(),
//		storage.WithDisabledClientMetrics(),
//		option.WithEndpoint(addr),
//		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
//		option.WithoutAuthentication())
//
// WithDisabledClientMetrics avoids the client's attempt to find credentials
// and a project for its metrics exporter (it only logs on failure, but it
// is slow and noisy); setting STORAGE_EMULATOR_HOST_GRPC=addr instead of the
// option.* options does the same thing.
//
// A MultiRangeDownloader opens a stream with only read_object_spec in the
// first message and blocks until the first response, from which it takes
// the object metadata (MRD.Attrs) and the read handle. Each Add becomes one
// ReadRange{read_offset, read_length, read_id} in its own request; the
// client resolves negative offsets and read_length 0 against the metadata
// size itself when it has it. Data is matched to ranges by read_id, each
// message's checksummed_data.crc32c is verified, and range_end completes the
// range with callback(offset, bytesReceived, nil).
//
// When a stream ends with an error, the client asks its retry policy
// (storage.ShouldRetry by default): UNAVAILABLE, INTERNAL, RESOURCE_EXHAUSTED
// and DEADLINE_EXCEEDED are retried, with no attempt limit at this level: it
// opens a new stream with the read handle and re-sends every unfinished range
// of the failed stream from offset+bytesReceived. Any other code (NOT_FOUND,
// OUT_OF_RANGE, ...) fails every pending range of that stream with the error,
// and when it was the last stream the downloader enters a permanent error
// (MRD.Error), failing all later Adds. There is no code that fails only one
// range: a fault either is retried invisibly or takes the stream down.
//
// So the injected faults behave like this against the default client:
//   - Fault503: the stream ends with UNAVAILABLE before the range's data; the
//     client reconnects and re-requests the range. Only the counters show it.
//   - FaultReset: AfterBytes of the range, then the stream ends with
//     UNAVAILABLE (what a dropped connection looks like to a gRPC client);
//     the client reconnects and resumes the range after the bytes it has.
//     Correct data, one extra stream. INTERNAL would behave the same; no
//     retryable code makes the client report the range as failed.
//   - Both loop without end against a rule that matches every time (Times 0,
//     Probability 1), with no backoff: the reconnect succeeds and the
//     re-sent range faults again. Use Times or Probability < 1.
//   - FaultShortBody: AfterBytes then range_end. The client does not check
//     the length: the callback reports success with n == AfterBytes < the
//     requested length. The bytes it got are correct; callers must compare n.
//   - FaultStall: AfterBytes, then nothing until the stream ends. The MRD has
//     no stall timeout for ranges: the range waits until MRD.Close, the
//     MRD's context ends, or the server closes. Even then its callback never
//     runs: on Close the client forgets ranges in flight on a stream without
//     calling them back (its cleanup drops the streams before failing their
//     pending ranges); only ranges not yet sent get an error. Callers need
//     their own deadline per range.
//
// An offset past the object size ends the stream with OUT_OF_RANGE (with a
// BidiReadObjectError detail naming the read_id, as the service does), which
// fails all pending ranges on it and, with one stream, makes the MRD's error
// permanent. A missing object or generation fails the stream open with
// NOT_FOUND; NewMultiRangeDownloader returns it.

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	// The storage module registers the google.storage.v2 message types.
	_ "cloud.google.com/go/storage"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	storageServiceName = "google.storage.v2.Storage"

	// maxMessageData is the most object data in one BidiReadObjectResponse.
	// The service sends up to 2 MiB; smaller messages make the shaped
	// timing smoother and interleave concurrent ranges more finely.
	maxMessageData = 256 << 10
)

var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

// v2Types are the google.storage.v2 message types the fake uses. Nested
// messages are reached through their parents' fields.
type v2Types struct {
	bidiReq, bidiResp, getReq, object, bidiErr protoreflect.MessageType
}

func lookupV2Types() (*v2Types, error) {
	var firstErr error
	find := func(name string) protoreflect.MessageType {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName("google.storage.v2." + name))
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("testserver: google.storage.v2.%s is not registered (is cloud.google.com/go/storage linked in?): %w", name, err)
		}
		return mt
	}
	t := &v2Types{
		bidiReq:  find("BidiReadObjectRequest"),
		bidiResp: find("BidiReadObjectResponse"),
		getReq:   find("GetObjectRequest"),
		object:   find("Object"),
		bidiErr:  find("BidiReadObjectError"),
	}
	return t, firstErr
}

// Field access by name. A missing field is a programming error.

func field(m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic(fmt.Sprintf("testserver: %s has no field %q", m.Descriptor().FullName(), name))
	}
	return fd
}

func has(m protoreflect.Message, name string) bool { return m.Has(field(m, name)) }

func getString(m protoreflect.Message, name string) string { return m.Get(field(m, name)).String() }

func getInt(m protoreflect.Message, name string) int64 { return m.Get(field(m, name)).Int() }

func getMessage(m protoreflect.Message, name string) protoreflect.Message {
	return m.Get(field(m, name)).Message()
}

func set(m protoreflect.Message, name string, v protoreflect.Value) { m.Set(field(m, name), v) }

func mutable(m protoreflect.Message, name string) protoreflect.Message {
	return m.Mutable(field(m, name)).Message()
}

// grpcServer serves google.storage.v2.Storage on a loopback listener.
type grpcServer struct {
	store objectStore
	ep    *Endpoint
	t     *v2Types
	lis   net.Listener
	srv   *grpc.Server

	wg        sync.WaitGroup // Serve and the streams' receive goroutines
	closeOnce sync.Once
	sums      sync.Map // sumKey -> objectSums
}

// newGRPCServer starts serving on a new 127.0.0.1:0 listener.
func newGRPCServer(store objectStore, ep *Endpoint) (*grpcServer, error) {
	t, err := lookupV2Types()
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &grpcServer{
		store: store,
		ep:    ep,
		t:     t,
		lis:   lis,
		srv:   grpc.NewServer(grpc.WaitForHandlers(true)),
	}
	g.srv.RegisterService(&storageServiceDesc, g)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		_ = g.srv.Serve(lis)
	}()
	return g, nil
}

// addr is the listener's "127.0.0.1:port".
func (g *grpcServer) addr() string { return g.lis.Addr().String() }

// close stops the server, ends all streams (clients see UNAVAILABLE) and
// waits for every goroutine of the server.
func (g *grpcServer) close() {
	g.closeOnce.Do(func() {
		g.srv.Stop() // waits for handlers (WaitForHandlers)
		g.wg.Wait()
	})
}

var storageServiceDesc = grpc.ServiceDesc{
	ServiceName: storageServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "GetObject",
		Handler:    getObjectHandler,
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "BidiReadObject",
		Handler:       bidiReadObjectHandler,
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "google/storage/v2/storage.proto",
}

func getObjectHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	g := srv.(*grpcServer)
	in := g.t.getReq.New().Interface()
	if err := dec(in); err != nil {
		return nil, err
	}
	h := func(ctx context.Context, req any) (any, error) {
		return g.getObject(ctx, req.(proto.Message).ProtoReflect())
	}
	if interceptor == nil {
		return h(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + storageServiceName + "/GetObject"}
	return interceptor(ctx, in, info, h)
}

func bidiReadObjectHandler(srv any, ss grpc.ServerStream) error {
	return srv.(*grpcServer).bidiReadObject(ss)
}

// bucketFromResource turns "projects/_/buckets/NAME" into "NAME".
func bucketFromResource(s string) string {
	if i := strings.LastIndex(s, "/buckets/"); i >= 0 {
		return s[i+len("/buckets/"):]
	}
	return s
}

func (g *grpcServer) lookup(bucket, name string, gen int64) (storedObject, error) {
	o, err := g.store.object(bucket, name, gen)
	if errors.Is(err, errObjectNotFound) {
		if gen != 0 {
			return o, status.Errorf(codes.NotFound, "No such object: %s/%s#%d", bucket, name, gen)
		}
		return o, status.Errorf(codes.NotFound, "No such object: %s/%s", bucket, name)
	}
	if err != nil {
		return o, status.Errorf(codes.Internal, "testserver: %v", err)
	}
	return o, nil
}

// checkConditions applies the if_(meta)generation_(not_)match fields of a
// GetObjectRequest or BidiReadObjectSpec.
func checkConditions(m protoreflect.Message, o storedObject) error {
	conds := []struct {
		field string
		got   int64
		match bool
	}{
		{"if_generation_match", o.Generation, true},
		{"if_generation_not_match", o.Generation, false},
		{"if_metageneration_match", o.Metageneration, true},
		{"if_metageneration_not_match", o.Metageneration, false},
	}
	for _, c := range conds {
		if has(m, c.field) && (getInt(m, c.field) == c.got) != c.match {
			return status.Errorf(codes.FailedPrecondition, "testserver: %s=%d failed for %s/%s (generation %d, metageneration %d)",
				c.field, getInt(m, c.field), o.Bucket, o.Name, o.Generation, o.Metageneration)
		}
	}
	return nil
}

func ctxStatus(err error) error { return status.FromContextError(err).Err() }

// Read handles are opaque to the client. Ours name the bucket, object and
// generation, so a stream reopened with one reads the same generation.

const handleMagic = "zrh1"

func encodeHandle(o storedObject) []byte {
	b := []byte(handleMagic)
	b = binary.AppendUvarint(b, uint64(len(o.Bucket)))
	b = append(b, o.Bucket...)
	b = binary.AppendUvarint(b, uint64(len(o.Name)))
	b = append(b, o.Name...)
	return binary.AppendVarint(b, o.Generation)
}

func decodeHandle(b []byte) (bucket, name string, gen int64, ok bool) {
	if !strings.HasPrefix(string(b), handleMagic) {
		return "", "", 0, false
	}
	b = b[len(handleMagic):]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	var ok1, ok2 bool
	bucket, ok1 = str()
	name, ok2 = str()
	gen, k := binary.Varint(b)
	if !ok1 || !ok2 || k <= 0 || k != len(b) {
		return "", "", 0, false
	}
	return bucket, name, gen, true
}

type sumKey struct {
	bucket, name string
	gen          int64
	size         int
}

type objectSums struct {
	crc32c uint32
	md5    []byte
}

func (g *grpcServer) objectSums(o storedObject) objectSums {
	k := sumKey{o.Bucket, o.Name, o.Generation, len(o.Data)}
	if v, ok := g.sums.Load(k); ok {
		return v.(objectSums)
	}
	m := md5.Sum(o.Data)
	s := objectSums{crc32c: crc32.Checksum(o.Data, crc32cTable), md5: m[:]}
	g.sums.Store(k, s)
	return s
}

// objectMessage is the google.storage.v2.Object for o.
func (g *grpcServer) objectMessage(o storedObject) protoreflect.Message {
	m := g.t.object.New()
	set(m, "name", protoreflect.ValueOfString(o.Name))
	set(m, "bucket", protoreflect.ValueOfString("projects/_/buckets/"+o.Bucket))
	set(m, "generation", protoreflect.ValueOfInt64(o.Generation))
	set(m, "metageneration", protoreflect.ValueOfInt64(o.Metageneration))
	set(m, "size", protoreflect.ValueOfInt64(int64(len(o.Data))))
	set(m, "storage_class", protoreflect.ValueOfString("STANDARD"))
	if o.ContentType != "" {
		set(m, "content_type", protoreflect.ValueOfString(o.ContentType))
	}
	if !o.Updated.IsZero() {
		for _, f := range []string{"create_time", "update_time", "finalize_time"} {
			set(m, f, protoreflect.ValueOfMessage(timestamppb.New(o.Updated).ProtoReflect()))
		}
	}
	s := g.objectSums(o)
	cs := mutable(m, "checksums")
	set(cs, "crc32c", protoreflect.ValueOfUint32(s.crc32c))
	set(cs, "md5_hash", protoreflect.ValueOfBytes(s.md5))
	return m
}

func (g *grpcServer) getObject(ctx context.Context, req protoreflect.Message) (any, error) {
	g.ep.c.metadata.Add(1)
	g.seePeer(ctx)
	o, err := g.lookup(bucketFromResource(getString(req, "bucket")), getString(req, "object"), getInt(req, "generation"))
	if err != nil {
		return nil, err
	}
	if err := checkConditions(req, o); err != nil {
		return nil, err
	}
	if err := g.ep.link.newStream().firstByte(ctx); err != nil {
		return nil, ctxStatus(err)
	}
	return g.objectMessage(o).Interface(), nil
}

// openSpec finds the object a BidiReadObjectSpec names. viaHandle reports
// that the spec carried one of our read handles, which pins the generation
// (and, as in the service, leaves the metadata out of the first response).
func (g *grpcServer) openSpec(spec protoreflect.Message) (o storedObject, viaHandle bool, err error) {
	bucket := bucketFromResource(getString(spec, "bucket"))
	name := getString(spec, "object")
	gen := getInt(spec, "generation")
	if has(spec, "read_handle") {
		h := getMessage(spec, "read_handle")
		// A handle that is not ours, or for another object, is ignored.
		if hb, hn, hg, ok := decodeHandle(h.Get(field(h, "handle")).Bytes()); ok && hb == bucket && hn == name {
			viaHandle = true
			if gen == 0 {
				gen = hg
			}
		}
	}
	if o, err = g.lookup(bucket, name, gen); err != nil {
		return o, false, err
	}
	if err := checkConditions(spec, o); err != nil {
		return o, false, err
	}
	return o, viaHandle, nil
}

// seePeer counts the client connection a call came on.
func (g *grpcServer) seePeer(ctx context.Context) {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		g.ep.c.peerSeen(p.Addr.String())
	}
}

func (g *grpcServer) bidiReadObject(ss grpc.ServerStream) error {
	g.ep.c.streamOpened()
	g.seePeer(ss.Context())
	defer g.ep.c.streamClosed()
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()

	first := g.t.bidiReq.New()
	if err := ss.RecvMsg(first.Interface()); err != nil {
		if err == io.EOF {
			return status.Error(codes.InvalidArgument, "testserver: stream closed before the first BidiReadObjectRequest")
		}
		return err
	}
	if !has(first, "read_object_spec") {
		return status.Error(codes.InvalidArgument, "testserver: the first BidiReadObjectRequest has no read_object_spec")
	}
	opened := time.Now()
	o, viaHandle, err := g.openSpec(getMessage(first, "read_object_spec"))
	if err != nil {
		return err
	}
	st := g.ep.link.newStream()
	if err := st.firstByte(ctx); err != nil {
		return ctxStatus(err)
	}
	resp := g.t.bidiResp.New()
	if !viaHandle {
		set(resp, "metadata", protoreflect.ValueOfMessage(g.objectMessage(o)))
	}
	set(mutable(resp, "read_handle"), "handle", protoreflect.ValueOfBytes(encodeHandle(o)))
	if err := ss.SendMsg(resp.Interface()); err != nil {
		return err
	}

	b := &bidiStream{
		g:         g,
		obj:       o,
		st:        st,
		ctx:       ctx,
		opened:    opened,
		out:       make(chan outMsg),
		rangeDone: make(chan struct{}),
		fail:      make(chan error, 1),
	}
	err = b.run(ss, first)
	cancel()
	b.wg.Wait()
	return err
}
