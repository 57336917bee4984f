package dataset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// jsonRecord builds a record of schema from JSON rows.
func jsonRecord(t testing.TB, sc *arrow.Schema, rows string) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, sc, strings.NewReader(rows))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// writeRecord writes rec as Parquet with rowGroup rows per row group.
func writeRecord(t testing.TB, rec arrow.RecordBatch, rowGroup int64) []byte {
	t.Helper()
	tbl := array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, rowGroup, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jsonRows is rec's rows as maps keyed by column name.
func jsonRows(t testing.TB, rec arrow.RecordBatch) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := array.RecordToJSON(rec, &buf); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// sameRows compares rows by column name, ignoring order (sorted by key).
func sameRows(t testing.TB, what string, got, want []map[string]any, key string) {
	t.Helper()
	byKey := func(a, b map[string]any) int { return int(a[key].(float64) - b[key].(float64)) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, byKey)
	slices.SortFunc(want, byKey)
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if !bytes.Equal(g, w) {
			t.Fatalf("%s: row %d = %s, want %s", what, i, g, w)
		}
	}
}

// driftFiles are five files whose columns differ in order, presence and
// width; want is every row as read through the unified schema (a int64,
// b string, c float64).
func driftFiles(t testing.TB) (files map[string][]byte, want []map[string]any) {
	i32, i64, f32, f64, str := arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64, arrow.BinaryTypes.String
	layouts := []struct {
		fields []arrow.Field
	}{
		{[]arrow.Field{{Name: "a", Type: i64}, {Name: "b", Type: str}}},
		{[]arrow.Field{{Name: "b", Type: str}, {Name: "a", Type: i64}}},
		{[]arrow.Field{{Name: "a", Type: i32}}},
		{[]arrow.Field{{Name: "b", Type: str}, {Name: "a", Type: i64}, {Name: "c", Type: f32}}},
		{[]arrow.Field{{Name: "c", Type: f64}, {Name: "a", Type: i64, Nullable: true}, {Name: "b", Type: str}}},
	}
	files = map[string][]byte{}
	for k, l := range layouts {
		var rows []string
		for i := k * 100; i < (k+1)*100; i++ {
			full := map[string]any{"a": i, "b": fmt.Sprintf("b-%d", i), "c": float64(i) / 2}
			row, exp := map[string]any{}, map[string]any{"a": float64(i), "b": nil, "c": nil}
			for _, f := range l.fields {
				row[f.Name] = full[f.Name]
				exp[f.Name] = full[f.Name]
			}
			exp["a"] = float64(i)
			js, _ := json.Marshal(row)
			rows = append(rows, string(js))
			want = append(want, exp)
		}
		rec := jsonRecord(t, arrow.NewSchema(l.fields, nil), "["+strings.Join(rows, ",")+"]")
		files[fmt.Sprintf("f%d.parquet", k)] = writeRecord(t, rec, 40)
		rec.Release()
	}
	return files, want
}

// Files with columns in different orders, missing columns and narrower
// types read as one schema, matched by name: through Iter, Batches and
// StreamingSplit (equal and not), every row compared by column name with
// what was written, every block with exactly Schema().
func TestSchemaDriftByName(t *testing.T) {
	files, want := driftFiles(t)
	fsys, _ := memFS(t, files)
	ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{TargetBlockBytes: 1, BatchRows: 30})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := ds.Schema(context.Background())
	wantSchema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "c", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	if !sameFields(sc, wantSchema) {
		t.Fatalf("Schema() = %s, want %s", sc, wantSchema)
	}
	check := func(rec arrow.RecordBatch) {
		if !rec.Schema().Equal(sc) {
			t.Fatalf("block schema %s, Schema() %s", rec.Schema(), sc)
		}
	}

	var got []map[string]any
	it := ds.Iter(context.Background())
	for it.Next() {
		check(it.Block().Record)
		got = append(got, jsonRows(t, it.Block().Record)...)
	}
	it.Close()
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	sameRows(t, "Iter", got, want, "a")

	got = nil
	bi := ds.Batches(context.Background(), &BatchOptions{BatchSize: 64})
	for bi.Next() {
		check(bi.Batch().Record)
		got = append(got, jsonRows(t, bi.Batch().Record)...)
	}
	bi.Close()
	if bi.Err() != nil {
		t.Fatal(bi.Err())
	}
	sameRows(t, "Batches", got, want, "a")

	for _, equal := range []bool{false, true} {
		splits := ds.StreamingSplit(2, equal)
		var mu sync.Mutex
		got = nil
		var wg sync.WaitGroup
		for _, s := range splits {
			wg.Go(func() {
				bi, err := s.Batches(context.Background(), &BatchOptions{BatchSize: 50})
				if err != nil {
					t.Error(err)
					return
				}
				defer bi.Close()
				for bi.Next() {
					mu.Lock()
					check(bi.Batch().Record)
					got = append(got, jsonRows(t, bi.Batch().Record)...)
					mu.Unlock()
				}
				if bi.Err() != nil {
					t.Error(bi.Err())
				}
			})
		}
		wg.Wait()
		sameRows(t, fmt.Sprintf("StreamingSplit equal=%v", equal), got, want, "a")
	}

	// A projection: c first, then a.
	ds, err = ReadParquet(fsys, "*.parquet", &ReadOptions{Columns: []string{"c", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if sc, _ := ds.Schema(context.Background()); sc.NumFields() != 2 || sc.Field(0).Name != "c" || sc.Field(1).Name != "a" {
		t.Fatalf("projected schema %s", sc)
	}
	got = nil
	it = ds.Iter(context.Background())
	for it.Next() {
		got = append(got, jsonRows(t, it.Block().Record)...)
	}
	it.Close()
	proj := make([]map[string]any, len(want))
	for i, w := range want {
		proj[i] = map[string]any{"a": w["a"], "c": w["c"]}
	}
	sameRows(t, "projection", got, proj, "a")
}

// sameFields compares names, types and nullability (not field metadata).
func sameFields(a, b *arrow.Schema) bool {
	if a.NumFields() != b.NumFields() {
		return false
	}
	for i := range a.NumFields() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || fa.Nullable != fb.Nullable || !arrow.TypeEqual(fa.Type, fb.Type) {
			return false
		}
	}
	return true
}

// A type conflict is an error from ReadParquet naming both files and the
// column.
func TestSchemaConflict(t *testing.T) {
	a := jsonRecord(t, arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil), `[{"id": 1, "v": 2}]`)
	defer a.Release()
	b := jsonRecord(t, arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.BinaryTypes.String}, {Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil), `[{"id": 2, "v": "x"}]`)
	defer b.Release()
	fsys, _ := memFS(t, map[string][]byte{"one.parquet": writeRecord(t, a, 10), "two.parquet": writeRecord(t, b, 10)})
	_, err := ReadParquet(fsys, "*.parquet", nil)
	if !errors.Is(err, ErrSchemaConflict) {
		t.Fatalf("err = %v, want ErrSchemaConflict", err)
	}
	for _, s := range []string{"one.parquet", "two.parquet", `"v"`} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not name %s", err, s)
		}
	}
	// Projecting the column away avoids the conflict.
	if _, err := ReadParquet(fsys, "*.parquet", &ReadOptions{Columns: []string{"id"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadParquet(fsys, "*.parquet", &ReadOptions{Columns: []string{"nope"}}); err == nil {
		t.Fatal("a column no file has was accepted")
	}
}

var nestedSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "min", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, arrow.Field{Name: "max", Type: arrow.PrimitiveTypes.Int64, Nullable: true}), Nullable: true},
	{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
	{Name: "m", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64), Nullable: true},
}, nil)

func nestedJSON(n int) string {
	var rows []string
	for i := range n {
		rows = append(rows, fmt.Sprintf(`{"id": %d, "s": {"min": %d, "max": %d}, "l": [%d, %d], "m": [{"key": "k%d", "value": %d}]}`, i, -i, i, i, i+1, i, i*2))
	}
	return "[" + strings.Join(rows, ",") + "]"
}

// A nested leaf ("s.min") yields blocks of exactly Schema() (a struct of
// that leaf); whole struct, list and map columns are selected by name.
func TestNestedProjection(t *testing.T) {
	rec := jsonRecord(t, nestedSchema, nestedJSON(300))
	defer rec.Release()
	fsys, _ := memFS(t, map[string][]byte{"n.parquet": writeRecord(t, rec, 100)})
	all := jsonRows(t, rec)
	for _, cols := range [][]string{{"s.min", "id"}, {"s", "l", "m", "id"}, {"id", "s.max", "s.min"}} {
		ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{Columns: cols})
		if err != nil {
			t.Fatal(cols, err)
		}
		sc, _ := ds.Schema(context.Background())
		var got []map[string]any
		it := ds.Iter(context.Background())
		for it.Next() {
			if r := it.Block().Record; !r.Schema().Equal(sc) {
				t.Fatalf("%v: block schema %s, Schema() %s", cols, r.Schema(), sc)
			}
			got = append(got, jsonRows(t, it.Block().Record)...)
		}
		it.Close()
		if it.Err() != nil {
			t.Fatal(cols, it.Err())
		}
		want := make([]map[string]any, len(all))
		for i, w := range all {
			want[i] = map[string]any{}
			for _, c := range cols {
				top, leaf, nested := strings.Cut(c, ".")
				if !nested {
					want[i][c] = w[c]
					continue
				}
				s, _ := want[i][top].(map[string]any)
				if s == nil {
					s = map[string]any{}
					want[i][top] = s
				}
				s[leaf] = w[top].(map[string]any)[leaf]
			}
		}
		sameRows(t, strings.Join(cols, ","), got, want, "id")
	}
}

// A struct that gains a field and widens another reads as the merged
// struct; rows of the older file have nulls for the new field.
func TestStructEvolution(t *testing.T) {
	old := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "min", Type: arrow.PrimitiveTypes.Int32, Nullable: true}), Nullable: true}}, nil)
	r1 := jsonRecord(t, old, `[{"id": 1, "s": {"min": 5}}, {"id": 2, "s": null}]`)
	defer r1.Release()
	r2 := jsonRecord(t, nestedSchema, `[{"id": 3, "s": {"min": 7, "max": 9}, "l": [1], "m": []}]`)
	defer r2.Release()
	fsys, _ := memFS(t, map[string][]byte{"1.parquet": writeRecord(t, r1, 10), "2.parquet": writeRecord(t, r2, 10)})
	ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{Columns: []string{"id", "s"}})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := ds.Schema(context.Background())
	if st := sc.Field(1).Type.(*arrow.StructType); st.NumFields() != 2 || st.Field(0).Type.ID() != arrow.INT64 {
		t.Fatalf("merged struct %s", sc)
	}
	var got []map[string]any
	it := ds.Iter(context.Background())
	for it.Next() {
		if !it.Block().Record.Schema().Equal(sc) {
			t.Fatalf("block %s", it.Block().Record.Schema())
		}
		got = append(got, jsonRows(t, it.Block().Record)...)
	}
	it.Close()
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	want := []map[string]any{
		{"id": 1.0, "s": map[string]any{"min": 5.0, "max": nil}},
		{"id": 2.0, "s": nil},
		{"id": 3.0, "s": map[string]any{"min": 7.0, "max": 9.0}},
	}
	sameRows(t, "evolution", got, want, "id")
}
