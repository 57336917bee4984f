package dataset

// This file saves and loads plans: at thousands of files and hundreds of
// ranks, every rank reading every footer costs files x ranks requests; a
// plan written once as one object, with each file's footer and version,
// is loaded by every rank instead.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// planVersion is the version of the saved plan format.
const planVersion = 1

// savedPlan is a plan as WritePlan writes it.
type savedPlan struct {
	Version   int         `json:"version"`
	Columns   []string    `json:"columns,omitempty"`
	Files     []savedFile `json:"files"`
	Units     []Unit      `json:"units"`
	TotalRows int64       `json:"total_rows"`
}

type savedFile struct {
	PlanFile
	Footer []byte `json:"footer"` // the Thrift bytes of the file's footer
}

// WritePlan writes p as JSON to w: its files with their versions and
// footers, and its units. A plan made by hand (not by Dataset.Plan or
// LoadPlan) has no footers and cannot be written: an error wrapping
// fs.ErrInvalid.
func WritePlan(w io.Writer, p *Plan) error {
	if len(p.footers) != len(p.Files) {
		return fmt.Errorf("dataset: write plan: it holds no footers (not made by Dataset.Plan or LoadPlan): %w", fs.ErrInvalid)
	}
	sp := savedPlan{Version: planVersion, Columns: p.Columns, Units: p.Units, TotalRows: p.TotalRows}
	for i, f := range p.Files {
		b, err := p.footers[i].Serialize(context.Background())
		if err != nil {
			return fmt.Errorf("dataset: write plan: %s: %w", f.Name, err)
		}
		sp.Files = append(sp.Files, savedFile{PlanFile: f, Footer: b})
	}
	if err := json.NewEncoder(w).Encode(&sp); err != nil {
		return fmt.Errorf("dataset: write plan: %w", err)
	}
	return nil
}

// LoadPlan reads a plan WritePlan wrote. The plan is untrusted input:
// every footer is checked as one read from its file would be, files must
// be sorted and distinct, and every unit must name a file of the plan with
// its version and fit that file's footer; violations wrap ErrCorrupt. The
// loaded plan shards exactly as the one written (the same Fingerprint).
func LoadPlan(r io.Reader) (*Plan, error) {
	var sp savedPlan
	if err := json.NewDecoder(r).Decode(&sp); err != nil {
		return nil, fmt.Errorf("%w: load plan: %v", ErrCorrupt, err)
	}
	if sp.Version != planVersion {
		return nil, fmt.Errorf("%w: load plan: version %d, want %d", ErrCorrupt, sp.Version, planVersion)
	}
	p := &Plan{Columns: sp.Columns, Units: sp.Units, TotalRows: sp.TotalRows}
	for i, f := range sp.Files {
		if i > 0 && f.Name <= sp.Files[i-1].Name {
			return nil, fmt.Errorf("%w: load plan: files not sorted and distinct at %q", ErrCorrupt, f.Name)
		}
		md, err := footerFromBytes(f.Name, f.Footer, f.Size)
		if err != nil {
			return nil, fmt.Errorf("load plan: %w", err)
		}
		p.Files = append(p.Files, f.PlanFile)
		p.footers = append(p.footers, md)
	}
	if err := p.checkUnits(); err != nil {
		return nil, fmt.Errorf("%w: load plan: %v", ErrCorrupt, err)
	}
	return p, nil
}

// checkUnits checks the units of a loaded plan against its files.
func (p *Plan) checkUnits() error {
	var rows int64
	for _, u := range p.Units {
		i, ok := p.fileIndex(u.File)
		if !ok {
			return fmt.Errorf("a unit names %q, not a file of the plan", u.File)
		}
		f, md := p.Files[i], p.footers[i]
		if u.Generation != f.Generation || u.FileSize != f.Size {
			return fmt.Errorf("a unit of %s names another version of it", u.File)
		}
		if err := checkUnit(u, md); err != nil {
			return err
		}
		if u.Rows > math.MaxInt64-rows {
			return fmt.Errorf("more than %d rows", int64(math.MaxInt64))
		}
		rows += u.Rows
	}
	if rows != p.TotalRows {
		return fmt.Errorf("units of %d rows, total_rows %d", rows, p.TotalRows)
	}
	return nil
}

// OpenPlan returns the dataset of a plan (from LoadPlan, or Dataset.Plan)
// over fsys without reading any footer: its files, schema and Plan are the
// plan's. opts are as for ReadParquet; opts.Columns must be nil or the
// plan's (else an error wrapping fs.ErrInvalid). Every read of a file
// checks it is still the version the plan was made from (generation when
// the FS reports one, else size and modification time) and fails with an
// error wrapping ErrPlanStale if not.
func OpenPlan(fsys fs.FS, p *Plan, opts *ReadOptions) (*Dataset, error) {
	if opts != nil && opts.Columns != nil && !slices.Equal(opts.Columns, p.Columns) {
		return nil, fmt.Errorf("dataset: open plan: columns %q, the plan's are %q: %w", opts.Columns, p.Columns, fs.ErrInvalid)
	}
	if len(p.footers) != len(p.Files) || len(p.Files) == 0 {
		return nil, fmt.Errorf("dataset: open plan: it holds no footers or no files: %w", fs.ErrInvalid)
	}
	o := opts.normalize(metadataFetchFromEnv())
	o.Columns = slices.Clone(p.Columns)
	d := &Dataset{fsys: fsys, opts: o, footers: &footerCache{m: map[string]*metadata.FileMetaData{}}, saved: p}
	cols := make([]*fileColumns, len(p.Files))
	for i, f := range p.Files {
		id := fileIdentity{Size: f.Size, Generation: f.Generation, ModTime: f.ModTime}
		d.files = append(d.files, f.Name)
		d.read = append(d.read, fileFooter{id: id, md: p.footers[i]})
		d.footers.put(cacheKey(f.Name, id), p.footers[i])
		fc, err := projectFile(f.Name, p.footers[i], o.Columns)
		if err != nil {
			return nil, err
		}
		cols[i] = fc
	}
	var err error
	if d.schema, err = unify(d.files, cols, o.Columns); err != nil {
		return nil, err
	}
	return d, nil
}

// stale is the error for a file whose open version src is not the one
// planned, or nil. The generation decides when both are known; otherwise
// the size, and the modification time when the plan recorded one.
func stale(planned fileIdentity, src *source) error {
	now := src.identity()
	same := planned.Size == now.Size
	switch {
	case planned.Generation != 0 && now.Generation != 0:
		same = same && planned.Generation == now.Generation
	case !planned.ModTime.IsZero():
		same = same && planned.ModTime.Equal(now.ModTime)
	}
	if same {
		return nil
	}
	return fmt.Errorf("dataset: %s: %w: planned generation %d of %d bytes, found generation %d of %d bytes",
		src.name, ErrPlanStale, planned.Generation, planned.Size, now.Generation, now.Size)
}
