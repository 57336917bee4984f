package mrdpool

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/zonalread/zonalread/internal/testkit"
)

// Observe is told of each range with how many ranges shared its
// downloader once it was added (itself included): three ranges on a pool
// of one shareable downloader share it one, two and three ways, so a
// caller can tell a busy stream from a slow link.
func TestObserveReportsSharing(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(3000, 3), shareable: true, hold: make(chan struct{})}
	var mu sync.Mutex
	var seen []RangeTiming
	p := New(b, &Options{PoolSize: 1, Observe: func(rt RangeTiming) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, rt)
	}})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Go(func() {
			buf := make([]byte, 1000)
			if _, err := p.ReadAt(context.Background(), buf, int64(i)*1000); err != nil {
				errs <- err
				return
			}
			testkit.SameBytes(t, "range", buf, b.data[i*1000:(i+1)*1000])
		})
		// Added one after the other, so each finds the ones before.
		testkit.WaitFor(t, "the range to reach the downloader", func() bool { return b.adds.Load() == int64(i+1) })
	}
	close(b.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var sharing []int
	for _, rt := range seen {
		if rt.Bytes != 1000 || rt.TTFB <= 0 {
			t.Errorf("timing %+v: want 1000 bytes and a time to first byte", rt)
		}
		sharing = append(sharing, rt.Sharing)
	}
	slices.Sort(sharing)
	if !slices.Equal(sharing, []int{1, 2, 3}) {
		t.Fatalf("Sharing of the three ranges = %v, want [1 2 3]", sharing)
	}
}
