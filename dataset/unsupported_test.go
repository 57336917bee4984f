package dataset

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/fstest"

	"github.com/apache/arrow-go/v18/parquet/metadata"
)

// A codec arrow-go cannot decode (LZ4 with the Hadoop framing) and an
// encrypted file are ErrUnsupported, not ErrCorrupt.
func TestUnsupportedCodec(t *testing.T) {
	good := writeParquet(t, 0, 2000, 1000)
	lz4 := rewrite(t, good, func(md *metadata.FileMetaData) {
		for _, rg := range md.RowGroups {
			for _, cc := range rg.Columns {
				cc.MetaData.Codec = 5 // LZ4
			}
		}
	})
	encrypted := append(bytes.Clone(good[:len(good)-4]), "PARE"...)
	fsys := fstest.MapFS{"lz4.parquet": {Data: lz4}, "enc.parquet": {Data: encrypted}}
	info, err := Inspect(context.Background(), fsys, "lz4.parquet")
	if err != nil || info.RowGroups[0].Compression != "LZ4" {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	ds, err := ReadParquet(fsys, "lz4.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	it := ds.Iter(context.Background())
	for it.Next() {
	}
	if err := it.Err(); !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("LZ4: %v, want ErrUnsupported", err)
	}
	it.Close()
	if _, err := ReadParquet(fsys, "enc.parquet", nil); !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("encrypted: %v, want ErrUnsupported", err)
	}
}

// A file in the layout of parquet-mr before 1.2.9 (its created_by makes
// arrow-go pad column chunks, bounded by the file size the footer is
// told) reads whole.
func TestOldParquetMRFile(t *testing.T) {
	old := rewrite(t, writeParquet(t, 0, 3000, 1000), func(md *metadata.FileMetaData) {
		v := "parquet-mr version 1.2.8"
		md.CreatedBy = &v
	})
	fsys := fstest.MapFS{"old.parquet": {Data: old}}
	info, err := Inspect(context.Background(), fsys, "old.parquet")
	if err != nil || info.CreatedBy != "parquet-mr version 1.2.8" {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	ds, err := ReadParquet(fsys, "*.parquet", &ReadOptions{PreserveOrder: true, TargetBlockBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, collect(t, ds.Iter(context.Background())), idRange(0, 3000), "all")
}
