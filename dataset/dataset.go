// Package dataset streams Parquet data out of a filesystem (a gcsfs.FS over
// GCS, or any fs.FS whose files are io.ReaderAt) into Go code, in the manner
// of Ray Data in one process: row groups become read tasks, read tasks run
// on a bounded worker pool under a memory budget, and blocks (Arrow record
// batches) flow through operators to an iterator.
//
//	ds, err := dataset.ReadParquet(fsys, "train/*.parquet", &dataset.ReadOptions{Columns: []string{"x", "y"}})
//	ds = ds.Filter(keepPositive).Limit(1_000_000)
//	it := ds.Iter(ctx)
//	defer it.Close()
//	for it.Next() {
//		b := it.Block() // b.Record is released by the next call to Next
//		...
//	}
//	if err := it.Err(); err != nil { ... }
//
// Footers are read with one ranged read of each file's tail, parsed once
// and reused; a read task fetches the byte ranges of its projected column
// chunks in as few ranged reads as possible (neighbours coalesced) before
// decoding, instead of one small ReadAt per page.
//
// # Schema
//
// ReadParquet reads every footer and computes one schema for the dataset
// before any data is read; Schema returns it and every block has exactly
// it (nested leaf projection included). The rules:
//   - Columns are matched by name, never by position: files may order them
//     differently.
//   - Without Columns, the fields are every top-level field of any file, in
//     order of first appearance (files sorted by name). With Columns, they
//     follow Columns: a name selects a top-level field whole (a struct,
//     list or map included), a dotted path ("s.min") selects a nested leaf
//     and its field is the struct holding only the selected leaves. A name
//     no file has is an error.
//   - A column some file lacks is read as nulls for that file's rows, and
//     its field is nullable.
//   - int32 and int64 read as int64, float32 and float64 as float64; a struct
//     is the union of its versions' children, merged by the same rules. Any
//     other difference is an error wrapping ErrSchemaConflict that names the
//     column and both files.
//
// # Untrusted files
//
// A footer is untrusted input: its length, its Thrift structure (every
// element count and length against the bytes left) and every row count,
// column-chunk offset and length (against the file size, overflow-safe) are
// checked before anything is allocated from them, and a row group must
// decode to the rows its footer claims. Violations wrap ErrCorrupt; valid
// files using features this package cannot read (encryption, the LZ4 Hadoop
// codec) wrap ErrUnsupported. With MaxErroredBlocks, an unreadable file
// counts as one errored block and its rows are skipped.
//
// # Failure
//
// A cancelled or expired context ends Iter, Batches and every split with an
// error wrapping the context's; a panic in a Map, Filter or Collate function
// ends the execution with a *PanicError; a split abandoned without Close
// fails the others with ErrSplitAbandoned after SplitOptions.AbandonTimeout.
// No iterator reports a clean end it did not reach.
//
// # Multi-host training
//
// Plan is the dataset's read plan, computed from the footers alone: units
// of (file, row-group range, row range). Every rank of a job computes the
// same plan and, with Plan.Shard or ShardBatches, its own part of each
// epoch, without talking to the others: equal rows and batch counts in
// Equal mode, a unit order shuffled from (seed, epoch), and a JSON
// Position that resumes exactly, fetching nothing of the skipped units.
// WritePlan, LoadPlan and OpenPlan save the plan once for every rank;
// ReadUnit reads one unit without the executor, for other engines.
//
// # Settings
//
// A nil *ReadOptions, *BatchOptions or *SplitOptions means the defaults; a
// size, count or timeout left zero takes its default, a named constant
// (DefaultWorkers, DefaultBatchSize, ...). The environment is read in one
// place: ReadParquetContext reads MetadataFetchEnv when
// ReadOptions.MetadataFetch is MetadataDefault.
//
// # Who uses what
//
// cmd/gcscat uses ReadParquet and Inspect. The rest is the API of the jobs
// this package is for: training loops (Batches, StreamingSplit and its
// Split, BatchIterator and BlockIterator; ShardBatches, Position and saved
// plans across hosts), batch jobs (Iter, the
// operators), and their monitoring (Iterator.Stats, ExecStats, OpStats);
// the Example functions show them.
package dataset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"golang.org/x/sync/errgroup"

	"github.com/zonalread/zonalread/gcsfs"
)

// BlockMetadata describes a block.
type BlockMetadata struct {
	NumRows   int64
	SizeBytes int64
	Schema    *arrow.Schema
	Source    string // the file it was read from
}

// Block is one Arrow record batch and its metadata.
type Block struct {
	Record arrow.RecordBatch
	Meta   BlockMetadata
}

// newBlock wraps rec (which the block then owns) with its metadata; source
// names the file it was read from ("" when it is cut from several).
func newBlock(rec arrow.RecordBatch, source string) Block {
	return Block{Record: rec, Meta: BlockMetadata{NumRows: rec.NumRows(), SizeBytes: recordSize(rec), Schema: rec.Schema(), Source: source}}
}

// Dataset is a lazy plan: files to read and operators to apply. Methods
// that add operators return a new Dataset; nothing runs until Iter.
type Dataset struct {
	fsys  fs.FS
	files []string
	opts  ReadOptions
	ops   []*operator

	schema *arrow.Schema // unified from the footers by ReadParquet

	footers *footerCache // shared by the datasets derived from one ReadParquet
	read    []fileFooter // per file: the footer ReadParquet read (md nil: it failed)
	saved   *Plan        // the plan OpenPlan opened (nil: ReadParquet's)
}

// ReadParquet is ReadParquetContext with context.Background().
func ReadParquet(fsys fs.FS, pattern string, opts *ReadOptions) (*Dataset, error) {
	return ReadParquetContext(context.Background(), fsys, pattern, opts)
}

// ReadParquetContext plans a read of the files of fsys matching pattern
// (path.Match syntax, as fs.Glob). It lists the files and reads every
// footer (one ranged read of each file's tail, a few files at a time) to
// compute the dataset's schema before any data is read. It normalises opts
// and, when opts.MetadataFetch is MetadataDefault, reads MetadataFetchEnv
// (the only place the package reads the environment). It fails with an
// error wrapping fs.ErrNotExist when nothing matches, ErrSchemaConflict
// when files disagree (see the package doc), or the footer's error when
// more files are unreadable than MaxErroredBlocks allows (unreadable files
// are skipped by executions, each counted as one errored block). ctx
// bounds the planning's listing, stats and opens on a gcsfs.FS.
//
// The dataset is a snapshot: its executions (Iter, ReadUnit, shards, its
// saved Plan) read the versions of the files whose footers it read, and a
// file changed since fails with an error wrapping ErrPlanStale rather than
// yield rows the plan does not describe. On a gcsfs.FS over GCS the files
// are opened at the versions the listing saw (gcsfs.FS.OpenVersion, which
// sends no request), so planning costs the listing and one footer read per
// file, and an execution its data reads only; a file overwritten between
// the listing and its footer read is planned at its new version.
func ReadParquetContext(ctx context.Context, fsys fs.FS, pattern string, opts *ReadOptions) (*Dataset, error) {
	matched, err := matchFiles(ctx, fsys, pattern)
	if err != nil {
		return nil, fmt.Errorf("dataset: %q: %w", pattern, err)
	}
	if len(matched) == 0 {
		return nil, fmt.Errorf("dataset: no files match %q: %w", pattern, fs.ErrNotExist)
	}
	slices.SortFunc(matched, func(a, b matchedFile) int { return strings.Compare(a.name, b.name) })
	d := &Dataset{fsys: fsys, opts: opts.normalize(metadataFetchFromEnv()), footers: &footerCache{m: map[string]*metadata.FileMetaData{}}}
	listed := make([]*fileIdentity, len(matched))
	for i, m := range matched {
		d.files = append(d.files, m.name)
		listed[i] = m.id
	}
	if d.schema, err = d.unifiedSchema(ctx, listed); err != nil {
		return nil, err
	}
	return d, nil
}

// matchedFile is a file a pattern matched, with the version of it the
// listing or stat that found it saw on a gcsfs.FS (nil elsewhere).
type matchedFile struct {
	name string
	id   *fileIdentity
}

// matchedOf is the matchedFile of name, which fi describes.
func matchedOf(fsys fs.FS, name string, fi fs.FileInfo) matchedFile {
	m := matchedFile{name: name}
	if _, ok := fsys.(gcsFS); ok {
		if v, ok := gcsfs.VersionOf(fi); ok {
			m.id = &fileIdentity{Size: v.Size, Generation: v.Generation, ModTime: v.ModTime}
		}
	}
	return m
}

// readDir is fs.ReadDir, bounded by ctx on a gcsfs.FS.
func readDir(ctx context.Context, fsys fs.FS, name string) ([]fs.DirEntry, error) {
	if g, ok := fsys.(gcsFS); ok {
		return g.ReadDirContext(ctx, name)
	}
	return fs.ReadDir(fsys, name)
}

// stat is fs.Stat, bounded by ctx on a gcsfs.FS.
func stat(ctx context.Context, fsys fs.FS, name string) (fs.FileInfo, error) {
	if g, ok := fsys.(gcsFS); ok {
		return g.StatContext(ctx, name)
	}
	return fs.Stat(fsys, name)
}

// matchFiles returns the regular files of fsys that match pattern. When
// only the pattern's last element has wildcards and fsys lists
// directories itself (fs.ReadDirFS, as gcsfs.FS), one listing of the
// directory answers, the entries telling files from directories (on a
// bucket a glob and a stat per match cost two round trips before the
// first footer; this costs one); an entry of another type (a symlink) is
// stat'ed. Otherwise it globs and stats the matches (regularFiles). A
// directory that does not exist, or is a file, matches nothing; another
// listing error is returned.
func matchFiles(ctx context.Context, fsys fs.FS, pattern string) ([]matchedFile, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	dir, file := path.Split(pattern)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	_, lists := fsys.(fs.ReadDirFS)
	if !lists || hasMeta(dir) || !hasMeta(file) {
		files, err := fs.Glob(fsys, pattern)
		if err != nil {
			return nil, err
		}
		return regularFiles(ctx, fsys, files), nil
	}
	entries, err := readDir(ctx, fsys, dir)
	if err != nil {
		// As a glob: a directory that is missing or is a file matches
		// nothing. Any other failure (a server gone) is the answer.
		if st, serr := stat(ctx, fsys, dir); errors.Is(err, fs.ErrNotExist) || errors.Is(serr, fs.ErrNotExist) || (serr == nil && !st.IsDir()) {
			return nil, nil
		}
		return nil, err
	}
	var out []matchedFile
	var other []string
	for _, e := range entries {
		if ok, _ := path.Match(file, e.Name()); !ok || e.IsDir() {
			continue
		}
		name := path.Join(dir, e.Name())
		if !e.Type().IsRegular() {
			other = append(other, name)
			continue
		}
		m := matchedFile{name: name}
		if fi, err := e.Info(); err == nil {
			m = matchedOf(fsys, name, fi)
		}
		out = append(out, m)
	}
	return append(out, regularFiles(ctx, fsys, other)...), nil
}

// hasMeta reports whether s has path.Match wildcards.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// regularFiles returns the names that stat as regular files, in their
// order, footerReaders stats at a time: on a link of tens of ms per
// request, one stat after another cost a round trip per file before the
// first footer was read.
func regularFiles(ctx context.Context, fsys fs.FS, names []string) []matchedFile {
	found := make([]*matchedFile, len(names))
	var g errgroup.Group
	g.SetLimit(footerReaders)
	for i, name := range names {
		g.Go(func() error {
			if st, err := stat(ctx, fsys, name); err == nil && !st.IsDir() {
				m := matchedOf(fsys, name, st)
				found[i] = &m
			}
			return nil
		})
	}
	g.Wait() // the stats return no error: a file that fails one is left out
	var out []matchedFile
	for _, m := range found {
		if m != nil {
			out = append(out, *m)
		}
	}
	return out
}

// Files returns the files the dataset reads, sorted.
func (d *Dataset) Files() []string { return slices.Clone(d.files) }

// Schema returns the schema of every block the dataset hands out before
// operators: the unified schema ReadParquet computed from the footers. It
// does no I/O.
func (d *Dataset) Schema(ctx context.Context) (*arrow.Schema, error) { return d.schema, nil }

func (d *Dataset) with(op *operator) *Dataset {
	return &Dataset{fsys: d.fsys, files: d.files, opts: d.opts, ops: append(slices.Clone(d.ops), op), footers: d.footers, schema: d.schema, read: d.read, saved: d.saved}
}
