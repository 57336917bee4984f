package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/zonalread/zonalread/dataset"
	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/bytesize"
)

const parquetDoc = `
Prints a Parquet file's schema and row groups (rows, bytes, compression),
read from its footer with one ranged read, and with --rows N its first N
rows (read through the dataset package: only the row groups needed).`

func runParquet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("parquet", "[--rows N] URL", parquetDoc)
	rows := f.Int64("rows", 0, "also print the first `N` rows")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return f.usageErr("want exactly one URL")
	}
	if *rows < 0 {
		return f.usageErr("--rows must not be negative")
	}
	u, err := parseURL(f, pos[0])
	if err != nil {
		return err
	}
	cache := newFSCache(gcsfs.Options{}, true)
	err = showParquet(ctx, cache, u, *rows, stdout)
	return errors.Join(err, cache.Close())
}

func showParquet(ctx context.Context, cache *fsCache, u objectURL, rows int64, w io.Writer) error {
	fsys, err := cache.get(ctx, u)
	if err != nil {
		return err
	}
	info, err := dataset.Inspect(ctx, fsys, u.name)
	if err != nil {
		return objErr(u.String(), err)
	}
	fmt.Fprintf(w, "%s: %s, %d rows in %d row groups", u, bytesize.Format(info.Size), info.NumRows, len(info.RowGroups))
	if info.CreatedBy != "" {
		fmt.Fprintf(w, ", written by %s", info.CreatedBy)
	}
	fmt.Fprintf(w, "\n\nschema:\n")
	for _, fld := range info.Schema.Fields() {
		null := ""
		if fld.Nullable {
			null = " (nullable)"
		}
		fmt.Fprintf(w, "  %s: %s%s\n", fld.Name, fld.Type, null)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ROW GROUP\tROWS\tCOMPRESSED\tUNCOMPRESSED\tCOMPRESSION\t")
	for i, rg := range info.RowGroups {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t\n", i, rg.Rows, bytesize.Format(rg.CompressedBytes), bytesize.Format(rg.UncompressedBytes), strings.ToLower(rg.Compression))
	}
	if err := tw.Flush(); err != nil || rows == 0 {
		return err
	}
	ds, err := dataset.ReadParquetContext(ctx, fsys, u.name, &dataset.ReadOptions{PreserveOrder: true, BatchRows: min(rows, dataset.DefaultBatchRows)})
	if err != nil {
		return objErr(u.String(), err)
	}
	it := ds.Limit(rows).Iter(ctx)
	defer it.Close()
	fmt.Fprintf(w, "\nfirst %d rows:\n", rows)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := make([]string, 0, info.Schema.NumFields())
	for _, fld := range info.Schema.Fields() {
		header = append(header, fld.Name)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for it.Next() {
		rec := it.Block().Record
		for r := range int(rec.NumRows()) {
			cells := make([]string, rec.NumCols())
			for c := range cells {
				cells[c] = rec.Column(c).ValueStr(r)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	if err := it.Err(); err != nil {
		return objErr(u.String(), err)
	}
	return tw.Flush()
}
