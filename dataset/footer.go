package dataset

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// ErrCorrupt is wrapped by errors for files that are not valid Parquet.
var ErrCorrupt = errors.New("dataset: corrupt parquet file")

// ErrUnsupported is wrapped by errors for valid Parquet that uses a feature
// this package cannot read: encryption, a codec arrow-go lacks (LZ4, the
// Hadoop framing), INT96 timestamps outside the nanosecond range.
var ErrUnsupported = errors.New("dataset: unsupported parquet feature")

// readerAtContext is what gcsfs files offer beyond io.ReaderAt.
type readerAtContext interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
}

// source is one open Parquet file: a ReaderAt of known size.
type source struct {
	name string
	size int64
	mod  time.Time
	r    io.ReaderAt
	c    io.Closer
}

func openSource(fsys fs.FS, name string) (*source, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("dataset: %s: file does not implement io.ReaderAt", name)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &source{name: name, size: st.Size(), mod: st.ModTime(), r: ra, c: f}, nil
}

func (s *source) readAt(ctx context.Context, p []byte, off int64) error {
	var n int
	var err error
	if rc, ok := s.r.(readerAtContext); ok {
		n, err = rc.ReadAtContext(ctx, p, off)
	} else {
		n, err = s.r.ReadAt(p, off)
	}
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readFooter reads, checks and parses the file's footer with one ranged
// read of its tail (two if the footer is larger than footerGuess). The
// footer is untrusted: its length, its Thrift structure, and every count,
// offset and length in it are checked against the file size before
// anything is allocated from them.
func readFooter(ctx context.Context, s *source) (*metadata.FileMetaData, error) {
	if s.size < 12 {
		return nil, fmt.Errorf("%w: %s: %d bytes is too small", ErrCorrupt, s.name, s.size)
	}
	n := min(s.size, footerGuess)
	tail := make([]byte, n)
	if err := s.readAt(ctx, tail, s.size-n); err != nil {
		return nil, fmt.Errorf("dataset: %s: read footer: %w", s.name, err)
	}
	magic := string(tail[n-4:])
	if magic == "PARE" {
		return nil, fmt.Errorf("%w: %s: encrypted parquet", ErrUnsupported, s.name)
	}
	if magic != "PAR1" {
		return nil, fmt.Errorf("%w: %s: no PAR1 magic at the end", ErrCorrupt, s.name)
	}
	flen := int64(binary.LittleEndian.Uint32(tail[n-8 : n-4]))
	if flen > s.size-12 { // leading magic, footer, length, trailing magic
		return nil, fmt.Errorf("%w: %s: footer length %d does not fit a %d-byte file", ErrCorrupt, s.name, flen, s.size)
	}
	var footer []byte
	if flen <= n-8 {
		footer = tail[n-8-flen : n-8]
	} else {
		footer = make([]byte, flen)
		if err := s.readAt(ctx, footer, s.size-8-flen); err != nil {
			return nil, fmt.Errorf("dataset: %s: read footer: %w", s.name, err)
		}
	}
	if err := checkThrift(footer); err != nil {
		return nil, fmt.Errorf("%w: %s: footer: %v", ErrCorrupt, s.name, err)
	}
	md, err := parseFooter(footer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.name, err)
	}
	// arrow-go's workaround for files of parquet-mr before 1.2.9 bounds
	// column chunks by the file size it is told here.
	md.SetSourceFileSize(s.size)
	if md.IsSetEncryptionAlgorithm() {
		return nil, fmt.Errorf("%w: %s: encrypted columns", ErrUnsupported, s.name)
	}
	if err := checkFooter(md, s.size); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.name, err)
	}
	return md, nil
}

// checkFooter checks every count, offset and length of a parsed footer
// against the schema and the file size, overflow-safe.
func checkFooter(md *metadata.FileMetaData, size int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("footer: %v", r)
		}
	}()
	if md.Schema == nil || md.Schema.NumColumns() == 0 {
		return errors.New("no columns in the schema")
	}
	if md.NumRows < 0 {
		return fmt.Errorf("%d rows", md.NumRows)
	}
	leaves := md.Schema.NumColumns()
	var rows int64
	for i := range md.NumRowGroups() {
		rg := md.RowGroup(i)
		if r := rg.NumRows(); r < 0 || r > math.MaxInt64-rows {
			return fmt.Errorf("row group %d has %d rows", i, r)
		}
		rows += rg.NumRows()
		if rg.NumColumns() != leaves {
			return fmt.Errorf("row group %d has %d column chunks for %d leaf columns", i, rg.NumColumns(), leaves)
		}
		for c := range leaves {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return fmt.Errorf("row group %d column %d: %v", i, c, err)
			}
			if _, err := chunkRange(cc, size); err != nil {
				return fmt.Errorf("row group %d column %d: %v", i, c, err)
			}
			if cc.NumValues() < 0 || cc.TotalUncompressedSize() < 0 {
				return fmt.Errorf("row group %d column %d: %d values of %d bytes", i, c, cc.NumValues(), cc.TotalUncompressedSize())
			}
		}
	}
	return nil
}

// parseFooter parses thrift footer bytes; the thrift decoder may panic on
// garbage, which is turned into an error.
func parseFooter(b []byte) (md *metadata.FileMetaData, err error) {
	defer func() {
		if r := recover(); r != nil {
			md, err = nil, fmt.Errorf("bad footer: %v", r)
		}
	}()
	return metadata.NewFileMetaData(b, nil)
}

// cacheKey names one version of a file: a footer cached under it is only
// reused for the same size and modification time.
func (s *source) cacheKey() string {
	return fmt.Sprintf("%s\x00%d\x00%d", s.name, s.size, s.mod.UnixNano())
}
