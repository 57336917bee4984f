package dataset

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ErrSchemaConflict is wrapped by the error for files whose columns of one
// name have types that cannot be read as one (see the package doc).
var ErrSchemaConflict = errors.New("dataset: schema conflict")

// fileColumns is one file's side of the projection: the leaf columns to
// decode and the top-level Arrow fields they decode to.
type fileColumns struct {
	leaves []int
	fields []arrow.Field
	roots  map[string]string // requested column -> its top-level field name
}

// projectFile resolves the projection (nil: every column) against one
// file's schema. A requested column the file lacks is simply absent.
func projectFile(name string, md *metadata.FileMetaData, columns []string) (fc *fileColumns, err error) {
	defer func() {
		if r := recover(); r != nil {
			fc, err = nil, fmt.Errorf("%w: %s: schema: %v", ErrCorrupt, name, r)
		}
	}()
	man, err := pqarrow.NewSchemaManifest(md.Schema, md.KeyValueMetadata(), &pqarrow.ArrowReadProperties{})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: schema: %v", ErrCorrupt, name, err)
	}
	fc = &fileColumns{roots: map[string]string{}}
	include := map[int]bool{}
	if columns == nil {
		for i := range md.Schema.NumColumns() {
			include[i] = true
		}
	}
	for _, c := range columns {
		if i := md.Schema.ColumnIndexByName(c); i >= 0 {
			include[i] = true
			fc.roots[c] = md.Schema.ColumnRoot(i).Name()
			continue
		}
		for k := range man.Fields {
			if sf := &man.Fields[k]; sf.Field.Name == c {
				addLeaves(sf, include)
				fc.roots[c] = c
				break
			}
		}
	}
	for k := range man.Fields {
		if f, ok := projectField(&man.Fields[k], include); ok {
			fc.fields = append(fc.fields, f)
		}
	}
	for i := range md.Schema.NumColumns() {
		if include[i] {
			fc.leaves = append(fc.leaves, i)
		}
	}
	return fc, nil
}

func addLeaves(sf *pqarrow.SchemaField, include map[int]bool) {
	if sf.IsLeaf() {
		include[sf.ColIndex] = true
	}
	for k := range sf.Children {
		addLeaves(&sf.Children[k], include)
	}
}

// projectField is the Arrow field pqarrow decodes for sf when only the
// included leaves are read (as its field readers build it): a struct keeps
// the included children, a list or map is whole once any leaf is included.
func projectField(sf *pqarrow.SchemaField, include map[int]bool) (arrow.Field, bool) {
	if len(sf.Children) == 0 {
		return *sf.Field, sf.IsLeaf() && include[sf.ColIndex]
	}
	f := *sf.Field
	if f.Type.ID() != arrow.STRUCT {
		for k := range sf.Children {
			if _, ok := projectField(&sf.Children[k], include); ok {
				return f, true
			}
		}
		return f, false
	}
	var children []arrow.Field
	for k := range sf.Children {
		if c, ok := projectField(&sf.Children[k], include); ok {
			children = append(children, c)
		}
	}
	if len(children) == 0 {
		return f, false
	}
	f.Type = arrow.StructOf(children...)
	return f, true
}

// unify computes the dataset's schema from every file's projection: fields
// matched by name, ordered as requested (or by first appearance), widened
// where allowed, nullable where any file lacks them.
func unify(files []string, cols []*fileColumns, columns []string) (*arrow.Schema, error) {
	var order []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			order = append(order, name)
		}
	}
	if columns == nil {
		for _, fc := range cols {
			for _, f := range fc.fields {
				add(f.Name)
			}
		}
	}
	for _, c := range columns {
		root := ""
		for _, fc := range cols {
			if r, ok := fc.roots[c]; ok {
				root = r
				break
			}
		}
		if root == "" {
			return nil, fmt.Errorf("dataset: no file has column %q: %w", c, ErrSchemaConflict)
		}
		add(root)
	}
	fields := make([]arrow.Field, 0, len(order))
	for _, name := range order {
		var merged arrow.Field
		from, missing := "", false
		for i, fc := range cols {
			f, ok := fieldByName(fc.fields, name)
			if !ok {
				missing = true
				continue
			}
			if from == "" {
				merged, from = f, files[i]
				continue
			}
			m, err := mergeField(merged, f)
			if err != nil {
				return nil, fmt.Errorf("%w: column %q is %s in %s but %s in %s", ErrSchemaConflict, name, merged.Type, from, f.Type, files[i])
			}
			merged = m
		}
		merged.Nullable = merged.Nullable || missing
		fields = append(fields, merged)
	}
	return arrow.NewSchema(fields, nil), nil
}

func fieldByName(fs []arrow.Field, name string) (arrow.Field, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f, true
		}
	}
	return arrow.Field{}, false
}

// mergeField is the field both a and b can be read as.
func mergeField(a, b arrow.Field) (arrow.Field, error) {
	out := a
	out.Nullable = a.Nullable || b.Nullable
	switch {
	case arrow.TypeEqual(a.Type, b.Type):
		return out, nil
	case widens(a.Type, b.Type):
		out.Type = b.Type
		return out, nil
	case widens(b.Type, a.Type):
		return out, nil
	}
	sa, okA := a.Type.(*arrow.StructType)
	sb, okB := b.Type.(*arrow.StructType)
	if !okA || !okB {
		return arrow.Field{}, errors.New("incompatible")
	}
	children := make([]arrow.Field, 0, sa.NumFields())
	for _, ca := range sa.Fields() {
		cb, ok := sb.FieldByName(ca.Name)
		if !ok {
			ca.Nullable = true
			children = append(children, ca)
			continue
		}
		m, err := mergeField(ca, cb)
		if err != nil {
			return arrow.Field{}, err
		}
		children = append(children, m)
	}
	for _, cb := range sb.Fields() {
		if _, ok := sa.FieldByName(cb.Name); !ok {
			cb.Nullable = true
			children = append(children, cb)
		}
	}
	out.Type = arrow.StructOf(children...)
	return out, nil
}

// widens reports whether values of from are read as to without loss.
func widens(from, to arrow.DataType) bool {
	return (from.ID() == arrow.INT32 && to.ID() == arrow.INT64) || (from.ID() == arrow.FLOAT32 && to.ID() == arrow.FLOAT64)
}

// readable reports whether a column of type from can be read as to.
func readable(from, to arrow.DataType) bool {
	if arrow.TypeEqual(from, to) || widens(from, to) {
		return true
	}
	_, err := mergeField(arrow.Field{Type: from}, arrow.Field{Type: to})
	return err == nil && to.ID() == arrow.STRUCT
}

// conform rebuilds rec with exactly schema: columns taken by name, widened
// or filled with nulls where the file lacks them. It releases rec.
func conform(ctx context.Context, rec arrow.RecordBatch, schema *arrow.Schema, mem memory.Allocator) (arrow.RecordBatch, error) {
	defer rec.Release()
	n := int(rec.NumRows())
	cols := make([]arrow.Array, 0, schema.NumFields())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for _, f := range schema.Fields() {
		idx := rec.Schema().FieldIndices(f.Name)
		if len(idx) == 0 {
			cols = append(cols, array.MakeArrayOfNull(mem, f.Type, n))
			continue
		}
		a, err := adapt(ctx, rec.Column(idx[0]), f.Type, mem)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
		cols = append(cols, a)
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows()), nil
}

// adapt returns a (retained or new) as type to.
func adapt(ctx context.Context, a arrow.Array, to arrow.DataType, mem memory.Allocator) (arrow.Array, error) {
	from := a.DataType()
	if arrow.TypeEqual(from, to) {
		a.Retain()
		return a, nil
	}
	if widens(from, to) {
		return compute.CastArray(compute.WithAllocator(ctx, mem), a, compute.SafeCastOptions(to))
	}
	st, ok := to.(*arrow.StructType)
	sa, isStruct := a.(*array.Struct)
	if !ok || !isStruct {
		return nil, fmt.Errorf("%w: cannot read %s as %s", ErrSchemaConflict, from, to)
	}
	if sa.Data().Offset() != 0 {
		c, err := array.Concatenate([]arrow.Array{sa}, mem)
		if err != nil {
			return nil, err
		}
		defer c.Release()
		sa = c.(*array.Struct)
	}
	children := make([]arrow.Array, 0, st.NumFields())
	defer func() {
		for _, c := range children {
			c.Release()
		}
	}()
	fromSt := from.(*arrow.StructType)
	for _, f := range st.Fields() {
		i, ok := fromSt.FieldIdx(f.Name)
		if !ok {
			children = append(children, array.MakeArrayOfNull(mem, f.Type, sa.Len()))
			continue
		}
		c, err := adapt(ctx, sa.Field(i), f.Type, mem)
		if err != nil {
			return nil, err
		}
		children = append(children, c)
	}
	return array.NewStructArrayWithFieldsAndNulls(children, st.Fields(), sa.Data().Buffers()[0], sa.NullN(), 0)
}
