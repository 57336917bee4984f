package gcsfs_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/gcsfs"
)

// TestManyReadersHeapWithinBudget reads objects whose total is 50 times the
// prefetch budget with 200 concurrent sequential readers, each reading two
// files one after the other (bytes checked by sha256), and checks that the
// prefetch buffers are reused: the memory they ever allocated stays within
// 1.5x PrefetchBudget (FS.Stats().BufferAllocated), and the live heap after
// the reads (a GC, the FS still open, its idle slabs held) grew by less than
// 1.5x PrefetchBudget over the heap before them.
//
// What is not asserted, only logged: the transient heap between GCs. Each
// Read also allocates a little short-lived garbage (contexts, read plans),
// which the collector lets grow to its GOGC goal, a multiple of the whole
// live heap (test objects included), so a peak of HeapInuse says more about
// GOGC than about the reader; the peak seen by ReadMemStats at every 16th
// read of every 10th reader is logged with the bytes allocated meanwhile.
func TestManyReadersHeapWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 3.2 GB")
	}
	const (
		readers        = 200
		objects        = 4
		objSize        = 8 << 20
		readSize       = 256 << 10
		filesPerReader = 2
		budget         = 64 << 20
	)
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	sums := make([][32]byte, objects)
	rng := rand.NewChaCha8([32]byte{16})
	for i := range objects {
		data := make([]byte, objSize)
		rng.Read(data)
		sums[i] = sha256.Sum256(data)
		if err := bucket.WriteAll(ctx, fmt.Sprintf("shard-%d", i), data, nil); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err := gcsfs.New(ctx, bucket, &gcsfs.Options{MaxPrefetch: 8 << 20, PrefetchBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()

	bufs := make([][]byte, readers)
	for i := range bufs {
		bufs[i] = make([]byte, readSize)
	}
	var peak heapPeak
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak.base = before.HeapInuse

	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := range readers {
		wg.Go(func() {
			for k := range filesPerReader {
				i := (r + k) % objects
				if err := readSum(fsys, fmt.Sprintf("shard-%d", i), bufs[r], sums[i], r%10 == 0, &peak); err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	live := int64(after.HeapInuse) - int64(before.HeapInuse)
	s := fsys.Stats()
	t.Logf("read %d MiB; prefetched %d MiB; prefetch buffers allocated %d MiB, reused %d MiB; live heap growth %d MiB; "+
		"all allocations during the reads %d MiB; peak sampled HeapInuse growth %d MiB (budget %d MiB)",
		int64(readers*filesPerReader*objSize)>>20, s.Prefetched>>20, s.BufferAllocated>>20, s.BufferReused>>20,
		live>>20, allocated>>20, int64(peak.max)>>20, budget>>20)
	if s.Prefetched < 10*budget {
		t.Errorf("prefetched %d bytes: the test must prefetch far more than the %d-byte budget", s.Prefetched, budget)
	}
	if s.BufferAllocated > budget*3/2 {
		t.Errorf("prefetch buffers allocated %d bytes, over 1.5x the %d-byte budget: released buffers are not reused", s.BufferAllocated, budget)
	}
	if live > budget*3/2 {
		t.Errorf("live heap grew by %d bytes, over 1.5x the %d-byte budget", live, budget)
	}
}

// heapPeak keeps the largest HeapInuse growth seen over base.
type heapPeak struct {
	mu        sync.Mutex
	base, max uint64
}

func (h *heapPeak) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.mu.Lock()
	if m.HeapInuse > h.base && m.HeapInuse-h.base > h.max {
		h.max = m.HeapInuse - h.base
	}
	h.mu.Unlock()
}

// readSum reads name from start to end with Read into buf and checks its
// sha256.
func readSum(fsys *gcsfs.FS, name string, buf []byte, want [32]byte, sample bool, peak *heapPeak) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	for n := 0; ; n++ {
		k, err := f.Read(buf)
		h.Write(buf[:k])
		if sample && n%16 == 0 {
			peak.sample()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if [32]byte(h.Sum(nil)) != want {
		return fmt.Errorf("%s: sha256 differs from the object's", name)
	}
	return nil
}
