package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// TestSoak runs mixed random and sequential readers against fakes that
// fail a fraction of responses, for ZONALREAD_SOAK (a duration, e.g. 5m;
// `make soak`). It reports reads, bytes and errors, and asserts no read ever
// returned wrong bytes and memory stayed bounded. Not part of `make test`.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("ZONALREAD_SOAK"))
	if err != nil {
		t.Skip("set ZONALREAD_SOAK=<duration> to run (make soak)")
	}
	forBoth(t, func(t *testing.T, r *rig) {
		r.setShape(testserver.Shape{Latency: time.Millisecond, ConnBandwidth: 200 << 20})
		objs := make([][]byte, 3)
		for i := range objs {
			objs[i] = testkit.RandomBytes(16<<20+i*104729, uint64(40+i))
			r.Put(t, fmt.Sprintf("s%d", i), objs[i])
		}
		for _, f := range []testserver.Fault{
			{Kind: testserver.Fault503, Probability: 0.02},
			{Kind: testserver.FaultReset, AfterBytes: 100 << 10, Probability: 0.02},
			{Kind: testserver.FaultShortBody, AfterBytes: 30 << 10, Probability: 0.01},
		} {
			r.ep().AddFault(f)
		}
		if r.zonal {
			r.ep().AddFault(testserver.Fault{Kind: testserver.FaultCorrupt, AfterBytes: 500, Probability: 0.01})
			r.ep().AddFault(testserver.Fault{Kind: testserver.FaultFatal, AfterBytes: 10 << 10, Probability: 0.005})
		}
		const budget = 32 << 20
		fsys := r.fs(t, &gcsfs.Options{PoolSize: 4, MaxPrefetch: 8 << 20, PrefetchBudget: budget, Retries: 8})
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base) // the objects, on the server and here
		var reads, bytesRead, errs, mismatches atomic.Int64
		var peakHeap atomic.Uint64
		ctx, cancel := context.WithTimeout(context.Background(), d/2) // half per backend
		defer cancel()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 11))
				for ctx.Err() == nil {
					i := rng.IntN(len(objs))
					src, name := objs[i], fmt.Sprintf("s%d", i)
					f, err := fsys.OpenContext(ctx, name)
					if err != nil {
						if ctx.Err() == nil {
							errs.Add(1)
						}
						continue
					}
					if g%2 == 0 { // sequential
						got, err := gcsfstest.ReadInChunks(f, 1<<20)
						switch {
						case err != nil:
							errs.Add(1)
						case string(got) != string(src):
							mismatches.Add(1)
						default:
							reads.Add(1)
							bytesRead.Add(int64(len(got)))
						}
					} else { // random
						for range 50 {
							n := 1 + rng.IntN(256<<10)
							off := rng.Int64N(int64(len(src) - n))
							buf := make([]byte, n)
							if _, err := f.ReadAtContext(ctx, buf, off); err != nil {
								if !errors.Is(err, context.DeadlineExceeded) {
									errs.Add(1)
								}
								break
							}
							if string(buf) != string(src[off:off+int64(n)]) {
								mismatches.Add(1)
							}
							reads.Add(1)
							bytesRead.Add(int64(n))
						}
					}
					f.Close()
				}
			})
		}
		// Live heap, sampled after a collection: what the process retains,
		// not what the GC has yet to reclaim.
		monitorDone := make(chan struct{})
		go func() {
			defer close(monitorDone)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peakHeap.Store(max(peakHeap.Load(), ms.HeapAlloc))
				if os.Getenv("ZONALREAD_SOAK_TRACE") != "" {
					t.Logf("live heap %d MiB", ms.HeapAlloc>>20)
				}
			}
		}()
		wg.Wait()
		<-monitorDone
		s := fsys.Stats()
		var injected int64
		for _, v := range r.ep().Stats().Faults {
			injected += v
		}
		t.Logf("%v: %d reads, %d MiB, %d errors, %d mismatches, %d faults injected, %d retries, %d downloaders replaced, peak live heap %d MiB (objects %d MiB), buffer high water %d MiB",
			d/2, reads.Load(), bytesRead.Load()>>20, errs.Load(), mismatches.Load(), injected, s.Retries, s.Replaced, peakHeap.Load()>>20, base.HeapAlloc>>20, s.BufferHigh>>20)
		if mismatches.Load() != 0 {
			t.Fatalf("%d reads returned wrong bytes", mismatches.Load())
		}
		if s.BufferHigh > budget {
			t.Fatalf("prefetch buffers %d over budget %d", s.BufferHigh, budget)
		}
		// Over the objects already held: the prefetch budget, what the
		// readers keep (4 sequential readers each hold an object twice while
		// append grows it), the client's and the fake's stream buffers.
		if grown, limit := peakHeap.Load()-base.HeapAlloc, uint64(budget+4*2*17<<20+128<<20); peakHeap.Load() > base.HeapAlloc && grown > limit {
			t.Fatalf("live heap grew %d MiB over the objects, more than %d MiB", grown>>20, limit>>20)
		}
		if injected == 0 || reads.Load() == 0 {
			t.Fatal("soak did nothing")
		}
	})
}
