package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// 100 concurrent readers on one FS with PoolSize 2: half share one open
// File through ReadAt, half open their own and read sequentially or whole;
// every byte is checked and the prefetch budget holds.
func TestHundredConcurrentReaders(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	forBoth(t, func(t *testing.T, r *rig) {
		r.setShape(testserver.Shape{Latency: 2 * time.Millisecond})
		objs := make([][]byte, 4)
		for i := range objs {
			objs[i] = testkit.RandomBytes(2<<20+i*7919, uint64(10+i))
			r.Put(t, fmt.Sprintf("obj%d", i), objs[i])
		}
		const budget = 8 << 20
		fsys := r.fs(t, &gcsfs.Options{PoolSize: 2, MaxPrefetch: 1 << 20, BlockSize: 128 << 10, MinPartSize: 128 << 10, PrefetchBudget: budget})
		shared, err := fsys.OpenContext(context.Background(), "obj0")
		if err != nil {
			t.Fatal(err)
		}
		defer shared.Close()
		var wg sync.WaitGroup
		for g := range 100 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 3))
				if g%2 == 0 {
					src := objs[0]
					for range 10 {
						n := 1 + rng.IntN(64<<10)
						off := rng.Int64N(int64(len(src) - n))
						buf := make([]byte, n)
						if _, err := shared.ReadAt(buf, off); err != nil {
							t.Errorf("shared ReadAt: %v", err)
							return
						}
						if string(buf) != string(src[off:off+int64(n)]) {
							t.Errorf("shared ReadAt(%d, %d) returned wrong bytes", off, n)
							return
						}
					}
					return
				}
				i := g % len(objs)
				name := fmt.Sprintf("obj%d", i)
				var got []byte
				var err error
				if g%4 == 1 {
					got, err = fsys.ReadFile(name)
				} else {
					var f *gcsfs.File
					if f, err = fsys.OpenContext(context.Background(), name); err == nil {
						got, err = gcsfstest.ReadInChunks(f, 64<<10)
						f.Close()
					}
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				if string(got) != string(objs[i]) {
					t.Errorf("%s: wrong bytes", name)
				}
			})
		}
		wg.Wait()
		if s := fsys.Stats(); s.BufferHigh > budget {
			t.Fatalf("prefetch buffers reached %d, budget %d", s.BufferHigh, budget)
		}
	})
}
