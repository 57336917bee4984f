package main

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/cmd/internal/demo"
)

func TestParquet(t *testing.T) {
	f := startFake(t)
	// The demo's sample file: 5000 rows in row groups of 1000.
	if _, err := f.srv.PutObject(testBucket, "t/cities.parquet", demo.TripsParquet(rand.New(rand.NewPCG(1, 2)))); err != nil {
		t.Fatal(err)
	}
	r := gcscat(t, "parquet", "gs://"+testBucket+"/t/cities.parquet")
	r.check(t, 0, "")
	for _, want := range []string{"5000 rows in 5 row groups", "trip_id: int64", "city: utf8", "km: float64", "snappy", "1000"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "first") {
		t.Fatal("rows printed without --rows")
	}

	r = gcscat(t, "parquet", "--rows", "5", "gs://"+testBucket+"/t/cities.parquet")
	r.check(t, 0, "")
	if !strings.Contains(r.stdout, "first 5 rows:") || !strings.Contains(r.stdout, "\n100004 ") || strings.Contains(r.stdout, "\n100005 ") {
		t.Fatalf("rows:\n%s", r.stdout)
	}

	gcscat(t, "parquet", "gs://"+testBucket+"/small.txt").check(t, 1, "corrupt parquet file")
	gcscat(t, "parquet", "gs://"+testBucket+"/missing.parquet").check(t, 1, "no such object")
	gcscat(t, "parquet").check(t, 2, "want exactly one URL")
	gcscat(t, "parquet", "--rows", "-1", "gs://"+testBucket+"/t/cities.parquet").check(t, 2, "--rows must not be negative")
}
