package dataset

import (
	"fmt"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
)

// int96Batch is how many INT96 values checkInt96 reads at once.
const int96Batch = 4096

// checkInt96 reads the task's projected INT96 columns (rare: a legacy
// timestamp encoding) and fails with ErrUnsupported if a value does not
// fit Arrow's int64 nanoseconds: a valid file using a range this package
// cannot represent, not a corrupt one.
func checkInt96(t *task, fr *fetched) (err error) {
	var cols []int
	for _, leaf := range t.f.leaves {
		if t.f.md.Schema.Column(leaf).PhysicalType() == parquet.Types.Int96 {
			cols = append(cols, leaf)
		}
	}
	if len(cols) == 0 {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: int96 reader panic: %v", ErrCorrupt, t.f.src.name, r)
		}
	}()
	pr, err := file.NewParquetReader(fr.file(), file.WithMetadata(t.f.md))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, t.f.src.name, err)
	}
	values := make([]parquet.Int96, int96Batch)
	def, rep := make([]int16, int96Batch), make([]int16, int96Batch)
	for _, rg := range t.rowGroups {
		for _, leaf := range cols {
			cr, err := pr.RowGroup(rg).Column(leaf)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrCorrupt, t.f.src.name, err)
			}
			r, ok := cr.(*file.Int96ColumnChunkReader)
			if !ok {
				continue
			}
			for r.HasNext() {
				_, n, err := r.ReadBatch(int96Batch, values, def, rep)
				if err != nil {
					return fmt.Errorf("%w: %s: %v", ErrCorrupt, t.f.src.name, err)
				}
				for _, v := range values[:n] {
					// arrow-go converts through ToTimestamp and fails the
					// read on its error, which would look like corruption.
					if _, err := v.ToTimestamp(); err != nil {
						return fmt.Errorf("%w: %s: INT96 timestamp %v: %v", ErrUnsupported, t.f.src.name, v.ToTime(), err)
					}
				}
			}
		}
	}
	return nil
}
