package testserver

// One BidiReadObject stream of the gRPC fake: ranges served concurrently,
// shaped, fault-injected and checksummed.

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	// The storage module registers the google.storage.v2 message types.
	_ "cloud.google.com/go/storage"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// bidiStream is one BidiReadObject stream. Its handler goroutine runs
// run, the only caller of SendMsg; a receive goroutine reads requests; each
// read range has a goroutine that waits out latency and shaping and hands
// messages to run, so ranges are served concurrently and interleave.
type bidiStream struct {
	g   *grpcServer
	obj storedObject
	st  *stream
	ctx context.Context // ends when run returns
	// opened is when the stream's first message arrived: the ranges it
	// carries were asked then.
	opened time.Time

	out       chan outMsg
	rangeDone chan struct{}
	fail      chan error // a range ends the stream with this status
	wg        sync.WaitGroup
}

type outMsg struct {
	msg proto.Message
	n   int64 // object bytes in msg
}

func (b *bidiStream) run(ss grpc.ServerStream, first protoreflect.Message) error {
	reqs := make(chan protoreflect.Message)
	recvErr := make(chan error, 1)
	b.g.wg.Add(1)
	go func() {
		defer b.g.wg.Done()
		for {
			m := b.g.t.bidiReq.New()
			// Returns once the handler has returned, if not before: gRPC
			// cancels the stream then.
			if err := ss.RecvMsg(m.Interface()); err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- m:
			case <-b.ctx.Done():
				return
			}
		}
	}()

	active := 0
	if err := b.startRanges(first, &active, b.opened); err != nil {
		return err
	}
	halfClosed := false
	for !halfClosed || active > 0 {
		select {
		case m := <-b.out:
			// Counted before the send: once sent, the client may finish
			// and read the counters before this goroutine runs again.
			b.g.ep.c.bytes.Add(m.n)
			if err := ss.SendMsg(m.msg); err != nil {
				b.g.ep.c.bytes.Add(-m.n)
				return err
			}
		case <-b.rangeDone:
			active--
		case m := <-reqs:
			if err := b.startRanges(m, &active, time.Now()); err != nil {
				return err
			}
		case err := <-recvErr:
			if err != io.EOF {
				return err
			}
			// The client half-closed: finish the ranges it asked for.
			halfClosed, recvErr = true, nil
		case err := <-b.fail:
			return err
		case <-b.ctx.Done():
			return ctxStatus(b.ctx.Err())
		}
	}
	// A range that failed the stream did so before it reported done.
	select {
	case err := <-b.fail:
		return err
	default:
		return nil
	}
}

// startRanges validates the read ranges of a request and starts serving
// them. An invalid range ends the stream with OUT_OF_RANGE.
func (b *bidiStream) startRanges(req protoreflect.Message, active *int, asked time.Time) error {
	ranges := req.Get(field(req, "read_ranges")).List()
	size := int64(len(b.obj.Data))
	for i := 0; i < ranges.Len(); i++ {
		r := ranges.Get(i).Message()
		id, off, n := getInt(r, "read_id"), getInt(r, "read_offset"), getInt(r, "read_length")
		b.g.ep.c.requests.Add(1)
		if off > size || n < 0 {
			return b.outOfRange(id, off, n)
		}
		if off < 0 {
			off = max(size+off, 0)
		}
		if n == 0 || n > size-off {
			n = size - off
		}
		f, faulted := b.g.ep.faults.next(b.obj.Name)
		if faulted && (f.Kind < Fault503 || f.Kind > lastGRPCFault) {
			faulted = false
		}
		*active++
		b.wg.Add(1)
		go b.serveRange(id, off, n, f, faulted, asked)
	}
	return nil
}

func (b *bidiStream) outOfRange(id, off, n int64) error {
	msg := fmt.Sprintf("testserver: read_offset %d, read_length %d out of range for %s/%s (size %d)",
		off, n, b.obj.Bucket, b.obj.Name, len(b.obj.Data))
	detail := b.g.t.bidiErr.New()
	errs := detail.Mutable(field(detail, "read_range_errors")).List()
	e := errs.NewElement()
	set(e.Message(), "read_id", protoreflect.ValueOfInt64(id))
	rs := mutable(e.Message(), "status")
	set(rs, "code", protoreflect.ValueOfInt32(int32(codes.OutOfRange)))
	set(rs, "message", protoreflect.ValueOfString(msg))
	errs.Append(e)
	st, err := status.New(codes.OutOfRange, msg).WithDetails(protoadapt.MessageV1Of(detail.Interface()))
	if err != nil {
		return status.Error(codes.OutOfRange, msg)
	}
	return st.Err()
}

// abort ends the stream with err unless it is ending already.
func (b *bidiStream) abort(err error) {
	select {
	case b.fail <- err:
	default:
	}
}

func (b *bidiStream) serveRange(id, off, n int64, f Fault, faulted bool, asked time.Time) {
	defer b.wg.Done()
	defer func() {
		select {
		case b.rangeDone <- struct{}{}:
		case <-b.ctx.Done():
		}
	}()
	if b.st.dataFirstByte(b.ctx, &b.g.ep.c, asked) != nil {
		return
	}
	limit, end := n, true
	if faulted {
		b.g.ep.c.faults[f.Kind].Add(1)
		if f.Kind == Fault503 {
			b.abort(status.Errorf(codes.Unavailable, "testserver: injected fault (503) on %s read_id %d", b.obj.Name, id))
			return
		}
		limit = min(max(f.AfterBytes, 0), n)
		switch f.Kind {
		case FaultReset, FaultFatal:
			end = limit == n // the range is complete if it was that short
		case FaultStall:
			end = false
		case FaultCorrupt:
			limit = n
		}
	}
	corruptAt := int64(-1)
	if faulted && f.Kind == FaultCorrupt && n > 0 {
		corruptAt = off + min(max(f.AfterBytes, 0), n-1)
	}
	if !b.sendData(id, off, limit, end, corruptAt) {
		return
	}
	if faulted {
		switch f.Kind {
		case FaultReset:
			b.abort(status.Errorf(codes.Unavailable, "testserver: injected fault (reset) on %s read_id %d after %d bytes", b.obj.Name, id, limit))
		case FaultFatal:
			if limit < n {
				b.abort(status.Errorf(codes.PermissionDenied, "testserver: injected fault (fatal) on %s read_id %d after %d bytes", b.obj.Name, id, limit))
			}
		case FaultStall:
			<-b.ctx.Done()
		}
	}
}

// sendData sends n bytes of the object from off as messages for read id,
// the last with range_end if end. The byte at object offset corruptAt (if
// in range) is flipped after its message's CRC32C is computed. It reports
// false if the stream ended.
func (b *bidiStream) sendData(id, off, n int64, end bool, corruptAt int64) bool {
	for pos, stop := off, off+n; ; {
		m := min(stop-pos, maxMessageData)
		for s := int64(0); s < m; s += chunkSize {
			if b.st.send(b.ctx, int(min(chunkSize, m-s))) != nil {
				return false
			}
		}
		last := pos+m == stop
		if m == 0 && !end {
			return true
		}
		data := b.obj.Data[pos : pos+m]
		crc := uint32(0) // 0: compute from data
		if corruptAt >= pos && corruptAt < pos+m {
			crc = crc32.Checksum(data, crc32cTable)
			data = bytes.Clone(data) // the store's copy is shared
			data[corruptAt-pos] ^= 0xff
		}
		msg := b.g.dataResponse(id, pos, data, last && end, crc)
		select {
		case b.out <- outMsg{msg, m}:
		case <-b.ctx.Done():
			return false
		}
		pos += m
		if last {
			return true
		}
	}
}

// dataResponse is a BidiReadObjectResponse carrying p, which starts at
// offset off of the object, for read id.
// crc, when non-zero, is sent instead of p's own CRC32C.
func (g *grpcServer) dataResponse(id, off int64, p []byte, end bool, crc uint32) proto.Message {
	resp := g.t.bidiResp.New()
	ranges := resp.Mutable(field(resp, "object_data_ranges")).List()
	e := ranges.NewElement()
	rd := e.Message()
	cd := mutable(rd, "checksummed_data")
	if len(p) > 0 {
		set(cd, "content", protoreflect.ValueOfBytes(p))
	}
	if crc == 0 {
		crc = crc32.Checksum(p, crc32cTable)
	}
	set(cd, "crc32c", protoreflect.ValueOfUint32(crc))
	rr := mutable(rd, "read_range")
	set(rr, "read_offset", protoreflect.ValueOfInt64(off))
	set(rr, "read_length", protoreflect.ValueOfInt64(int64(len(p))))
	set(rr, "read_id", protoreflect.ValueOfInt64(id))
	if end {
		set(rd, "range_end", protoreflect.ValueOfBool(true))
	}
	ranges.Append(e)
	return resp.Interface()
}
