package dataset

// This file holds the read plan: the units a dataset reads, computed from
// the footers alone, and ReadUnit, which reads one unit without the
// executor. The executor (loop.go), sharding (shard.go) and saved plans
// (planio.go) all cut their work from these units.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// ErrPlanStale is wrapped by the error of reading a unit (ReadUnit, a
// shard, an execution of any dataset) whose file is no longer the version
// the plan was made from: another generation, or another size (or, without
// generations, another modification time). No row of the new version is
// read.
var ErrPlanStale = errors.New("dataset: file changed since the plan was made")

// Unit is one read of a plan: rows [RowOffset, RowOffset+Rows) of the row
// groups [FirstRowGroup, FirstRowGroup+NumRowGroups) of one file, counted
// from the first row of FirstRowGroup. Reading it fetches the projected
// column chunks of those row groups only; rows outside the range are cut
// after decoding. A plan's units cover whole row groups; Shard cuts them
// into row ranges.
type Unit struct {
	File          string `json:"file"`
	Generation    int64  `json:"generation,omitempty"` // the file's GCS generation; 0 when unknown
	FileSize      int64  `json:"file_size"`
	FirstRowGroup int    `json:"first_row_group"`
	NumRowGroups  int    `json:"num_row_groups"`
	RowOffset     int64  `json:"row_offset,omitempty"`
	Rows          int64  `json:"rows"`
}

// PlanFile is one file of a plan, with the version the plan was made from.
type PlanFile struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	Generation int64     `json:"generation,omitempty"` // 0 when the FS does not report one
	ModTime    time.Time `json:"mod_time"`
	Rows       int64     `json:"rows"`
}

// Plan is a dataset's deterministic read plan: a pure function of the
// files' footers, the projection and TargetBlockBytes, so every process
// that reads the same files computes the same plan without talking to the
// others. Units are in file (sorted by name) and row-group order; each
// covers whole row groups of one file, neighbouring small row groups merged
// up to TargetBlockBytes of projected uncompressed data (the executor's
// read tasks are these units). A Plan is read-only once made: Shard and
// WritePlan never change it.
//
// Ranks that plan for themselves must see the same files in the same
// versions, or their shards overlap: a file overwritten while the ranks
// list and read footers gives them different plans. Compare Fingerprint
// across ranks, or plan once and have every rank load the saved plan
// (WritePlan, LoadPlan, OpenPlan), which also detects later overwrites.
type Plan struct {
	Columns   []string   `json:"columns,omitempty"` // the projection (nil: every column)
	Files     []PlanFile `json:"files"`
	Units     []Unit     `json:"units"`
	TotalRows int64      `json:"total_rows"` // the sum of the units' rows

	footers []*metadata.FileMetaData // parallel to Files
}

// fileIdentity is the version of a file: what a plan records and a read
// checks.
type fileIdentity struct {
	Size       int64
	Generation int64
	ModTime    time.Time
}

// fileFooter is the footer ReadParquet read for one file, and the version
// it read it from; md is nil when the footer could not be read.
type fileFooter struct {
	id fileIdentity
	md *metadata.FileMetaData
}

// fileUnits is the plan of one file: one unit per row group, neighbouring
// row groups merged while their projected uncompressed bytes stay within
// target. It is the one place units are cut from a footer.
func fileUnits(name string, id fileIdentity, md *metadata.FileMetaData, leaves []int, target int64) []Unit {
	var units []Unit
	var est int64
	for rg := range md.NumRowGroups() {
		b := rowGroupBytes(md, rg, leaves)
		if k := len(units); k == 0 || est+b > target || est+b < est {
			units = append(units, Unit{File: name, Generation: id.Generation, FileSize: id.Size, FirstRowGroup: rg})
			est = 0
		}
		u := &units[len(units)-1]
		u.NumRowGroups++
		u.Rows += md.RowGroup(rg).NumRows() // checkFooter bounds the sum
		est += b
	}
	return units
}

// rowGroupBytes is the uncompressed bytes of row group rg's projected
// column chunks.
func rowGroupBytes(md *metadata.FileMetaData, rg int, leaves []int) int64 {
	meta := md.RowGroup(rg)
	var est int64
	for _, leaf := range leaves {
		if cc, err := meta.ColumnChunk(leaf); err == nil {
			est = saturatingAdd(est, max(cc.TotalUncompressedSize(), 0))
		}
	}
	return est
}

// Plan returns the dataset's read plan, from the footers ReadParquet read
// (or the saved plan OpenPlan was given): it does no I/O. The operators of
// d (Map, Filter, Limit) are not part of it. It fails when a file's footer
// could not be read (a plan covers every file or none) or when the files
// hold more than math.MaxInt64 rows.
func (d *Dataset) Plan() (*Plan, error) {
	if d.saved != nil {
		p := *d.saved
		p.Columns, p.Files, p.Units = slices.Clone(p.Columns), slices.Clone(p.Files), slices.Clone(p.Units)
		return &p, nil
	}
	p := &Plan{Columns: slices.Clone(d.opts.Columns), Files: make([]PlanFile, len(d.files)), footers: make([]*metadata.FileMetaData, len(d.files))}
	for i, name := range d.files {
		ff := d.read[i]
		if ff.md == nil {
			return nil, fmt.Errorf("dataset: plan: %s: %w: its footer could not be read", name, ErrCorrupt)
		}
		fc, err := projectFile(name, ff.md, d.opts.Columns)
		if err != nil {
			return nil, err
		}
		units := fileUnits(name, ff.id, ff.md, fc.leaves, d.opts.TargetBlockBytes)
		rows := unitRows(units)
		if rows > math.MaxInt64-p.TotalRows {
			return nil, fmt.Errorf("dataset: plan: %w: more than %d rows", ErrCorrupt, int64(math.MaxInt64))
		}
		p.TotalRows += rows
		p.Units = append(p.Units, units...)
		p.Files[i] = PlanFile{Name: name, Size: ff.id.Size, Generation: ff.id.Generation, ModTime: ff.id.ModTime, Rows: rows}
		p.footers[i] = ff.md
	}
	return p, nil
}

// unitRows is the rows of units (their sum fits: each file's does).
func unitRows(units []Unit) int64 {
	var n int64
	for _, u := range units {
		n += u.Rows
	}
	return n
}

// ReadUnit reads one unit of d's plan (or of a shard of it) without the
// executor: it opens the file, checks it is the version the unit names
// (else an error wrapping ErrPlanStale, before any data is read), fetches
// the projected column chunks of the unit's row groups (neighbours
// coalesced) and calls emit with record batches of at most
// ReadOptions.BatchRows rows and exactly d's Schema, in row order. emit
// owns each record (it must Release it); an error from emit stops the read
// and is returned. A unit whose range does not fit the file's footer fails
// with an error wrapping fs.ErrInvalid; a file d does not read, one
// wrapping fs.ErrNotExist. It is safe for concurrent use.
func (d *Dataset) ReadUnit(ctx context.Context, u Unit, emit func(arrow.RecordBatch) error) error {
	_, err := d.readUnit(ctx, u, emit)
	return err
}

// readUnit is ReadUnit, with the read's counters.
func (d *Dataset) readUnit(ctx context.Context, u Unit, emit func(arrow.RecordBatch) error) (readStats, error) {
	i, ok := slices.BinarySearch(d.files, u.File)
	if !ok {
		return readStats{}, fmt.Errorf("dataset: read unit: %s is not a file of the dataset: %w", u.File, fs.ErrNotExist)
	}
	unitID := fileIdentity{Size: u.FileSize, Generation: u.Generation}
	pin := d.planned(i)
	if pin == nil {
		pin = &unitID
	}
	src, err := openSource(ctx, d.fsys, u.File, pin)
	if err != nil {
		return readStats{}, fmt.Errorf("dataset: open %s: %w", u.File, err)
	}
	defer src.c.Close()
	if err := stale(unitID, src); err != nil {
		return readStats{}, err
	}
	md, err := d.footerOf(ctx, src)
	if err != nil {
		return readStats{}, err
	}
	if err := checkUnit(u, md); err != nil {
		return readStats{}, err
	}
	f, err := resolve(src, md, d.opts.Columns, d.schema)
	if err != nil {
		return readStats{}, err
	}
	return readTask(ctx, newTask(f, i, u), d.opts.CoalesceGap, d.opts.BatchRows, memory.DefaultAllocator, emit)
}

// checkUnit checks an untrusted unit (from a saved plan, or made by hand)
// against the file's footer, overflow-safe.
func checkUnit(u Unit, md *metadata.FileMetaData) error {
	n := md.NumRowGroups()
	if u.FirstRowGroup < 0 || u.NumRowGroups <= 0 || u.FirstRowGroup > n || u.NumRowGroups > n-u.FirstRowGroup {
		return fmt.Errorf("dataset: %s: unit of row groups [%d, +%d) outside the file's %d: %w", u.File, u.FirstRowGroup, u.NumRowGroups, n, fs.ErrInvalid)
	}
	var rows int64
	for rg := u.FirstRowGroup; rg < u.FirstRowGroup+u.NumRowGroups; rg++ {
		rows += md.RowGroup(rg).NumRows() // checkFooter bounds the sum
	}
	if u.RowOffset < 0 || u.Rows < 0 || u.RowOffset > rows || u.Rows > rows-u.RowOffset {
		return fmt.Errorf("dataset: %s: unit rows [%d, +%d) outside the %d rows of its row groups: %w", u.File, u.RowOffset, u.Rows, rows, fs.ErrInvalid)
	}
	return nil
}
