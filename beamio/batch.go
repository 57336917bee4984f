package beamio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
)

// Batch is one element of ReadParquet's output: rows of one unit of the
// read plan, as an Arrow record batch of the dataset's schema.
type Batch struct {
	// Record holds the rows. The element owns it: a DoFn that keeps it
	// past its call Retains it. It is allocated by Go's allocator, so an
	// unreleased record is freed by the garbage collector.
	Record arrow.RecordBatch
	// Source is the file the rows were read from.
	Source string
	// Unit is the index of the plan unit the rows were read from.
	Unit int64
}

func init() {
	beam.RegisterCoder(reflect.TypeOf(Batch{}), EncodeBatch, DecodeBatch)
}

// batchFormat is the first byte of an encoded Batch: the version of the
// layout below.
const batchFormat = 1

// EncodeBatch encodes b as the coder of Batch does: a format byte, Unit
// and Source (varint, length-prefixed string), then Record in the Arrow IPC
// stream format (schema message, one record batch, end of stream). A Batch
// without a Record encodes its metadata alone.
func EncodeBatch(b Batch) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(batchFormat)
	buf.Write(binary.AppendVarint(nil, b.Unit))
	buf.Write(binary.AppendUvarint(nil, uint64(len(b.Source))))
	buf.WriteString(b.Source)
	if b.Record == nil {
		return buf.Bytes(), nil
	}
	w := ipc.NewWriter(&buf, ipc.WithSchema(b.Record.Schema()))
	if err := w.Write(b.Record); err != nil {
		return nil, fmt.Errorf("beamio: encode batch of %s: %w", b.Source, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("beamio: encode batch of %s: %w", b.Source, err)
	}
	return buf.Bytes(), nil
}

// ErrBadBatch is wrapped by the errors of DecodeBatch for bytes that are
// not an encoded Batch.
var ErrBadBatch = errors.New("beamio: not an encoded batch")

// DecodeBatch decodes what EncodeBatch encoded (the runner hands back the
// bytes this package's coder wrote). A wrong format byte, a truncated
// header, an IPC stream that does not hold exactly one record batch,
// trailing bytes, or an IPC stream arrow-go panics on fail with an error
// wrapping ErrBadBatch. It is not a validator for hostile bytes: arrow-go
// allocates what an IPC header claims, so a forged header can exhaust
// memory.
func DecodeBatch(data []byte) (Batch, error) {
	r := bytes.NewReader(data)
	if v, err := r.ReadByte(); err != nil || v != batchFormat {
		return Batch{}, fmt.Errorf("%w: format byte", ErrBadBatch)
	}
	unit, err := binary.ReadVarint(r)
	if err != nil {
		return Batch{}, fmt.Errorf("%w: unit: %v", ErrBadBatch, err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(r.Len()) {
		return Batch{}, fmt.Errorf("%w: source length", ErrBadBatch)
	}
	src := make([]byte, n)
	if _, err := io.ReadFull(r, src); err != nil {
		return Batch{}, fmt.Errorf("%w: source: %v", ErrBadBatch, err)
	}
	b := Batch{Source: string(src), Unit: unit}
	if r.Len() == 0 {
		return b, nil
	}
	if b.Record, err = decodeRecord(data[len(data)-r.Len():]); err != nil {
		return Batch{}, fmt.Errorf("%w: %s: %v", ErrBadBatch, b.Source, err)
	}
	return b, nil
}

// ipcEOS is the end-of-stream marker of the Arrow IPC stream format.
var ipcEOS = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// decodeRecord reads data, an IPC stream of exactly one record batch that
// ends with its end-of-stream marker (so a stream cut after the batch is
// not taken for a whole one).
func decodeRecord(data []byte) (rec arrow.RecordBatch, err error) {
	// arrow-go's IPC reader can panic on malformed bytes (slice bounds);
	// such input is an error here, not a crash of the worker.
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, fmt.Errorf("malformed IPC stream: %v", r)
		}
	}()
	if !bytes.HasSuffix(data, ipcEOS) {
		return nil, errors.New("no end-of-stream marker")
	}
	r := bytes.NewReader(data)
	ir, err := ipc.NewReader(r, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, err
	}
	defer ir.Release()
	if !ir.Next() {
		if err := ir.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("no record batch in the stream")
	}
	rec = ir.RecordBatch()
	rec.Retain()
	if ir.Next() || r.Len() != 0 {
		rec.Release()
		return nil, errors.New("more than one record batch, or bytes after the stream")
	}
	if err := ir.Err(); err != nil {
		rec.Release()
		return nil, err
	}
	return rec, nil
}
