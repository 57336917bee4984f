package dataset

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/apache/arrow-go/v18/parquet/file"
)

// Damaged pages end a read with an error wrapping ErrCorrupt (or, where
// the damage still decodes, rows), never a crash: the columns decode on
// goroutines of their own, where a decoder panic not recovered there would
// end the process. Each of the first 64 bytes of every column chunk (its
// first page's header and data) of a three-column file is flipped in turn;
// some of them make arrow-go's decoders panic, and the test checks that at
// least one such panic came back as an error.
func TestCorruptPagesAcrossColumns(t *testing.T) {
	good := writeParquet(t, 0, 3000, 1500)
	pf, err := file.NewParquetReader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	md := pf.MetaData()
	var corrupt, panics, tried int
	for rg := range md.NumRowGroups() {
		for c := range md.RowGroup(rg).NumColumns() {
			cc, err := md.RowGroup(rg).ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			r, err := chunkRange(cc, int64(len(good)))
			if err != nil {
				t.Fatal(err)
			}
			for off := r.off; off < r.off+min(r.n, 64); off++ {
				tried++
				switch err := readDamaged(t, good, off); {
				case errors.Is(err, ErrCorrupt):
					corrupt++
					if strings.Contains(err.Error(), "decoder panic") {
						panics++
					}
				case err != nil:
					t.Fatalf("byte %d flipped: %v, want an error wrapping ErrCorrupt", off, err)
				}
			}
		}
	}
	t.Logf("of %d damaged files, %d failed as corrupt, %d of them by a decoder panic", tried, corrupt, panics)
	if panics == 0 {
		t.Fatal("no decoder panicked: the test no longer exercises the recovery")
	}
}

// readDamaged reads data with byte off flipped and returns the error that
// ended the read.
func readDamaged(t *testing.T, data []byte, off int64) error {
	data = append([]byte(nil), data...)
	data[off] ^= 0x5a
	ds, err := ReadParquet(fstest.MapFS{"f.parquet": {Data: data}}, "f.parquet", &ReadOptions{BatchRows: 500})
	if err != nil {
		t.Fatal(err) // the footer is intact
	}
	it := ds.Iter(context.Background())
	for it.Next() {
	}
	it.Close()
	return it.Err()
}
