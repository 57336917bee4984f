package dataset

// This file holds everything about footers: opening a file, reading and
// checking its footer (untrusted input; thrift.go bounds its Thrift walk),
// caching parsed footers, reading all of them for the unified schema, and
// resolving one file's projection for an execution.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"golang.org/x/sync/errgroup"

	"github.com/zonalread/zonalread/gcsfs"
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
	name    string
	size    int64
	mod     time.Time
	gen     int64 // the GCS generation a gcsfs file pinned; 0 when unknown
	r       io.ReaderAt
	c       io.Closer
	planned bool // opened at the version a plan names: a change is ErrPlanStale
	// reopen opens another handle to the version s has open, without a
	// round trip; nil where that would cost one. See fetchRanges.
	reopen func(ctx context.Context) (*gcsfs.File, error)
}

// generationer is what gcsfs files offer: the generation they pinned.
type generationer interface{ Generation() int64 }

// identity is the version of the file the source has open.
func (s *source) identity() fileIdentity {
	return fileIdentity{Size: s.size, Generation: s.gen, ModTime: s.mod}
}

// gcsFS is what a gcsfs.FS offers beyond fs.FS: calls bounded by a
// context (so closing an execution never waits on a slow server), and
// opens of a version already known, which cost no round trip on GCS.
type gcsFS interface {
	OpenContext(ctx context.Context, name string) (*gcsfs.File, error)
	OpenVersion(ctx context.Context, name string, v gcsfs.Version) (*gcsfs.File, error)
	ReadDirContext(ctx context.Context, name string) ([]fs.DirEntry, error)
	StatContext(ctx context.Context, name string) (fs.FileInfo, error)
	Zonal() bool
}

// openSource opens name for ranged reads; ctx bounds the open (and its
// stat) when the FS takes one. With a version (pin non-nil) the file is
// opened at that version: on a gcsfs.FS without a stat where it can be
// (gcsfs.FS.OpenVersion), elsewhere by a stat that must match it; a file
// that is no longer that version fails, at the open or at a read, with an
// error wrapping ErrPlanStale.
func openSource(ctx context.Context, fsys fs.FS, name string, pin *fileIdentity) (*source, error) {
	var f fs.File
	var err error
	switch g, ok := fsys.(gcsFS); {
	case ok && pin != nil:
		f, err = nilFile(g.OpenVersion(ctx, name, gcsfs.Version{Size: pin.Size, Generation: pin.Generation, ModTime: pin.ModTime}))
	case ok:
		f, err = nilFile(g.OpenContext(ctx, name))
	default:
		f, err = fsys.Open(name)
	}
	if err != nil {
		if pin != nil {
			err = planStale(err)
		}
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
	src := &source{name: name, size: st.Size(), mod: st.ModTime(), r: ra, c: f, planned: pin != nil}
	if g, ok := f.(generationer); ok {
		src.gen = g.Generation()
	}
	src.reopen = reopener(fsys, src)
	if pin != nil {
		if err := stale(*pin, src); err != nil {
			f.Close()
			return nil, err
		}
	}
	return src, nil
}

// reopener returns how to open src's version again without a round trip,
// or nil. A gcsfs file on GCS over HTTP has a generation and no
// multi-range downloader: a pinned open of it (OpenVersion) does no I/O,
// and the handle brings its own pool of PoolSize GETs. A zonal file's pool
// already carries many ranges per stream, and a new handle would open new
// streams; elsewhere a pinned open stats the object.
func reopener(fsys fs.FS, src *source) func(ctx context.Context) (*gcsfs.File, error) {
	g, ok := fsys.(gcsFS)
	if !ok || src.gen == 0 || g.Zonal() {
		return nil
	}
	v := gcsfs.Version{Size: src.size, Generation: src.gen, ModTime: src.mod}
	return func(ctx context.Context) (*gcsfs.File, error) {
		return g.OpenVersion(ctx, src.name, v)
	}
}

// nilFile returns a gcsfs open's result as an fs.File, nil (not a nil
// *gcsfs.File) on error.
func nilFile(f *gcsfs.File, err error) (fs.File, error) {
	if err != nil {
		return nil, err
	}
	return f, nil
}

// readErr is err of a read of s: an object changed under a source opened
// at a planned version is ErrPlanStale.
func (s *source) readErr(err error) error {
	if s.planned {
		return planStale(err)
	}
	return err
}

// planStale is err of an open or read of a planned version: one saying
// the object changed also wraps ErrPlanStale.
func planStale(err error) error {
	if errors.Is(err, gcsfs.ErrObjectChanged) {
		return fmt.Errorf("%w: %w", ErrPlanStale, err)
	}
	return err
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
	return s.readErr(err)
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
	return footerFromBytes(s.name, footer, s.size)
}

// footerFromBytes checks and parses the Thrift bytes of the footer of the
// size-byte file name: read from the file's tail, or from a saved plan
// (untrusted either way).
func footerFromBytes(name string, footer []byte, size int64) (*metadata.FileMetaData, error) {
	if err := checkThrift(footer); err != nil {
		return nil, fmt.Errorf("%w: %s: footer: %v", ErrCorrupt, name, err)
	}
	md, err := parseFooter(footer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	// arrow-go's workaround for files of parquet-mr before 1.2.9 bounds
	// column chunks by the file size it is told here.
	md.SetSourceFileSize(size)
	if md.IsSetEncryptionAlgorithm() {
		return nil, fmt.Errorf("%w: %s: encrypted columns", ErrUnsupported, name)
	}
	if err := checkFooter(md, size); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
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
// reused for the same size, modification time and generation.
func (s *source) cacheKey() string { return cacheKey(s.name, s.identity()) }

func cacheKey(name string, id fileIdentity) string {
	return fmt.Sprintf("%s\x00%d\x00%d\x00%d", name, id.Size, id.ModTime.UnixNano(), id.Generation)
}

// footerCache keeps parsed footers by file name, so later executions (the
// epochs of a split, a second Iter) open files without reading them again.
type footerCache struct {
	mu sync.Mutex
	m  map[string]*metadata.FileMetaData
}

func (c *footerCache) get(name string) *metadata.FileMetaData {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

func (c *footerCache) put(name string, md *metadata.FileMetaData) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = md
}

// unifiedSchema reads every footer (caching them) and unifies the files'
// projected schemas. listed holds the versions a listing saw (nil, or
// d.files' entries): a file is opened at its listed version, which on
// GCS costs no round trip; one changed since is opened anew.
func (d *Dataset) unifiedSchema(ctx context.Context, listed []*fileIdentity) (*arrow.Schema, error) {
	d.read = make([]fileFooter, len(d.files))
	cols := make([]*fileColumns, len(d.files))
	errs := make([]error, len(d.files))
	var g errgroup.Group
	g.SetLimit(footerReaders)
	for i, name := range d.files {
		g.Go(func() error {
			var pin *fileIdentity
			if listed != nil {
				pin = listed[i]
			}
			src, md, err := d.openFooter(ctx, i, pin)
			if pin != nil && errors.Is(err, ErrPlanStale) {
				src, md, err = d.openFooter(ctx, i, nil)
			}
			if err == nil {
				src.c.Close()
				d.read[i] = fileFooter{id: src.identity(), md: md}
				cols[i], err = projectFile(name, md, d.opts.Columns)
			}
			errs[i] = err
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dataset: reading footers: %w", err)
	}
	var good []*fileColumns
	var names []string
	failed := 0
	for i, err := range errs {
		if err != nil {
			if failed++; d.opts.MaxErroredBlocks >= 0 && failed > d.opts.MaxErroredBlocks {
				return nil, err
			}
			continue
		}
		good, names = append(good, cols[i]), append(names, d.files[i])
	}
	if len(good) == 0 {
		return nil, errors.Join(errs...)
	}
	return unify(names, good, d.opts.Columns)
}

// openFooter opens file i, at version pin when it is non-nil (see
// openSource), and returns it with its footer: the cached one when the
// file is unchanged, else one read and cached now. The file is closed when
// the footer fails.
func (d *Dataset) openFooter(ctx context.Context, i int, pin *fileIdentity) (*source, *metadata.FileMetaData, error) {
	name := d.files[i]
	src, err := openSource(ctx, d.fsys, name, pin)
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: open %s: %w", name, err)
	}
	md, err := d.footerOf(ctx, src)
	if err != nil {
		src.c.Close()
		return nil, nil, err
	}
	return src, md, nil
}

// planned is the version of file i the dataset's plan was made from: an
// execution reads that version or fails with ErrPlanStale. It is nil for a
// file whose footer ReadParquet could not read (an execution tries it
// anew).
func (d *Dataset) planned(i int) *fileIdentity {
	if d.saved == nil && d.read[i].md == nil {
		return nil
	}
	id := d.read[i].id
	return &id
}

// footerOf returns the footer of the open file src: the cached one when
// the file is unchanged, else one read and cached now.
func (d *Dataset) footerOf(ctx context.Context, src *source) (*metadata.FileMetaData, error) {
	if md := d.footers.get(src.cacheKey()); md != nil {
		return md, nil
	}
	md, err := readFooter(ctx, src)
	if err != nil {
		return nil, err
	}
	d.footers.put(src.cacheKey(), md)
	return md, nil
}

// resolveFooter opens file i and resolves its footer for an execution.
func (d *Dataset) resolveFooter(ctx context.Context, i int) footerResult {
	src, md, err := d.openFooter(ctx, i, d.planned(i))
	if err != nil {
		return footerResult{idx: i, err: err}
	}
	f, err := resolve(src, md, d.opts.Columns, d.schema)
	if err != nil {
		src.c.Close()
		return footerResult{idx: i, err: err}
	}
	return footerResult{idx: i, f: f}
}

// footer is a parsed file footer with its projection resolved.
type footer struct {
	src    *source
	md     *metadata.FileMetaData
	leaves []int         // projected leaf columns (empty: the file has none of them)
	schema *arrow.Schema // the dataset's schema: every block is conformed to it
}

// resolve matches the projection against the file's schema and checks
// that every column it has can be read as the dataset's schema says.
func resolve(src *source, md *metadata.FileMetaData, columns []string, unified *arrow.Schema) (*footer, error) {
	fc, err := projectFile(src.name, md, columns)
	if err != nil {
		return nil, err
	}
	for _, f := range fc.fields {
		want, ok := fieldByName(unified.Fields(), f.Name)
		if ok && !readable(f.Type, want.Type) {
			return nil, fmt.Errorf("%w: column %q is %s in %s but %s in the dataset's schema", ErrSchemaConflict, f.Name, f.Type, src.name, want.Type)
		}
	}
	return &footer{src: src, md: md, leaves: fc.leaves, schema: unified}, nil
}

func (f *footer) leafColumns() []int { return f.leaves }

// chunkRange is the byte range of a column chunk, checked against the file
// size with overflow-safe arithmetic.
func chunkRange(cc *metadata.ColumnChunkMetaData, size int64) (byteRange, error) {
	start := cc.DataPageOffset()
	if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
		start = cc.DictionaryPageOffset()
	}
	n := cc.TotalCompressedSize()
	if start < 0 || n < 0 || start > size || n > size-start {
		return byteRange{}, fmt.Errorf("column chunk at %d of %d bytes is outside the %d-byte file", start, n, size)
	}
	return byteRange{start, n}, nil
}
