package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zonalread/zonalread/internal/testserver"
)

// demoBucket holds the demo data; demoURL is its filesystem URL.
const (
	demoBucket = "demo"
	demoURL    = "gs://" + demoBucket + "?zonal=false"
)

// The demo data: demoFiles files of trips, demoRowGroups row groups of
// demoRowsPerGroup rows each.
const (
	demoFiles        = 4
	demoRowGroups    = 8
	demoRowsPerGroup = 2500
)

// startDemo starts a fake GCS server holding the demo trips files
// (trips/2024-0N.parquet). Pointing STORAGE_EMULATOR_HOST at it makes
// gs://demo its bucket for the workers of a runner that runs them in this
// process (prism). The caller closes it.
func startDemo() (*testserver.Server, error) {
	srv, err := testserver.Start(&testserver.Options{Buckets: []string{demoBucket}, NoGRPC: true})
	if err != nil {
		return nil, err
	}
	for i := range demoFiles {
		data, err := tripsParquet(uint64(i), i%2 == 1)
		if err == nil {
			_, err = srv.PutObject(demoBucket, fmt.Sprintf("trips/2024-%02d.parquet", i+1), data)
		}
		if err != nil {
			srv.Close()
			return nil, err
		}
	}
	return srv, nil
}

// tripsParquet is one demo file of trips (trip_id, city, km), seeded by
// seed. With float32Km its km column is float32, as a file written by
// another tool might be: the dataset's schema reads it as float64.
func tripsParquet(seed uint64, float32Km bool) ([]byte, error) {
	kmType := arrow.DataType(arrow.PrimitiveTypes.Float64)
	if float32Km {
		kmType = arrow.PrimitiveTypes.Float32
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "trip_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "city", Type: arrow.BinaryTypes.String},
		{Name: "km", Type: kmType},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	rng := rand.New(rand.NewPCG(2024, seed))
	cities := []string{"Lagos", "Lima", "Osaka", "Oslo", "Paris"}
	for i := range demoRowGroups * demoRowsPerGroup {
		b.Field(0).(*array.Int64Builder).Append(int64(seed)<<32 | int64(i))
		c := rng.IntN(len(cities))
		b.Field(1).(*array.StringBuilder).Append(cities[c])
		km := float64(int((1+float64(c))*rng.Float64()*1000)) / 100 // cities differ in trip length
		if float32Km {
			b.Field(2).(*array.Float32Builder).Append(float32(km))
		} else {
			b.Field(2).(*array.Float64Builder).Append(km)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	if err := pqarrow.WriteTable(tbl, &buf, demoRowsPerGroup, props, pqarrow.DefaultWriterProps()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
