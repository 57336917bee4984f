package dataset

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/apache/arrow-go/v18/arrow"
)

// FileInfo describes one Parquet file, from its footer alone.
type FileInfo struct {
	Name      string
	Size      int64
	NumRows   int64
	CreatedBy string
	Schema    *arrow.Schema
	RowGroups []RowGroupInfo
}

// RowGroupInfo describes one row group.
type RowGroupInfo struct {
	Rows              int64
	CompressedBytes   int64 // of all its column chunks
	UncompressedBytes int64
	Compression       string // of its first column chunk
}

// Inspect reads the footer of the Parquet file name of fsys (one ranged
// read of its tail) and describes the file. Errors wrap fs.ErrNotExist or
// ErrCorrupt where they apply.
func Inspect(ctx context.Context, fsys fs.FS, name string) (info *FileInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, r)
		}
	}()
	src, err := openSource(ctx, fsys, name, nil)
	if err != nil {
		return nil, err
	}
	defer src.c.Close()
	md, err := readFooter(ctx, src)
	if err != nil {
		return nil, err
	}
	fc, err := projectFile(name, md, nil)
	if err != nil {
		return nil, err
	}
	sc, err := unify([]string{name}, []*fileColumns{fc}, nil)
	if err != nil {
		return nil, err
	}
	info = &FileInfo{Name: name, Size: src.size, NumRows: md.NumRows, CreatedBy: md.GetCreatedBy(), Schema: sc}
	for i := range md.NumRowGroups() {
		rg := md.RowGroup(i)
		ri := RowGroupInfo{Rows: rg.NumRows()}
		for c := range rg.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				continue
			}
			ri.CompressedBytes += cc.TotalCompressedSize()
			ri.UncompressedBytes += cc.TotalUncompressedSize()
			if c == 0 {
				ri.Compression = cc.Compression().String()
			}
		}
		info.RowGroups = append(info.RowGroups, ri)
	}
	return info, nil
}
