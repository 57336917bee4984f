package testserver

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zonalread/zonalread/internal/procstat"
)

// BenchmarkShapedLink is the link the fake delivers, with nothing else
// running: objects of 12 MiB, each read as 8 ranged GETs at once over the
// HTTP endpoint shaped as dataset's BenchmarkScan shapes it (20 ms, 50
// MiB/s per connection, 1000 MiB/s in all), for 1, 4 and 8 objects at
// once (8 to 64 connections). MiB/s is what arrived; cap-ratio is that
// over min(connections x 50 MiB/s, 1000 MiB/s), less the round trip's
// share; cpu-s/op is the process's CPU time per round, the server's
// included. On a machine of few cores the in-process server's sending and
// the client's receiving share the CPU, and the link falls short of its
// shape when that runs out: a benchmark over the fake measures that too.
func BenchmarkShapedLink(b *testing.B) {
	const (
		size  = 12 << 20
		parts = 8
		conn  = 50 << 20
		agg   = 1000 << 20
		rtt   = 20 * time.Millisecond
	)
	srv := NewTest(b, &Options{NoGRPC: true})
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for i := range 8 {
		srv.Put(b, fmt.Sprintf("link/%d", i), data)
	}
	srv.HTTP.SetShape(Shape{Latency: rtt, ConnBandwidth: conn, AggregateBandwidth: agg})
	ctx := context.Background()
	for _, objects := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("objects-%d", objects), func(b *testing.B) {
			cpu0 := procstat.CPUTime()
			for b.Loop() {
				var g errgroup.Group
				for o := range objects {
					for p := range parts {
						g.Go(func() error {
							off, n := int64(p*size/parts), int64(size/parts)
							r, err := srv.Blob.NewRangeReader(ctx, fmt.Sprintf("link/%d", o), off, n, nil)
							if err != nil {
								return err
							}
							defer r.Close()
							got, err := io.Copy(io.Discard, r)
							if err == nil && got != n {
								err = fmt.Errorf("read %d bytes of %d", got, n)
							}
							return err
						})
					}
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
			secs := b.Elapsed().Seconds() / float64(b.N)
			bytes := float64(objects * size)
			ideal := rtt.Seconds() + bytes/float64(min(objects*parts*conn, agg))
			b.ReportMetric(bytes/(1<<20)/secs, "MiB/s")
			b.ReportMetric(ideal/secs, "cap-ratio")
			b.ReportMetric((procstat.CPUTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
