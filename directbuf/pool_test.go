package directbuf

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/testkit"
)

func TestPoolBudgetNeverExceeded(t *testing.T) {
	const budget = 1 << 20
	p := NewPool(budget)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 200 {
				size := 1 + r.IntN(budget/3)
				b, err := p.Get(context.Background(), size)
				if err != nil {
					t.Error(err)
					return
				}
				if b.Len() != size {
					t.Errorf("Len = %d, want %d", b.Len(), size)
				}
				b.WriteAt([]byte{1}, int64(size-1))
				b.Release()
			}
		})
	}
	wg.Wait()
	if hw := p.HighWater(); hw > budget || hw == 0 {
		t.Fatalf("high-water mark %d, budget %d", hw, budget)
	}
	if p.InUse() != 0 {
		t.Fatalf("InUse = %d after all released", p.InUse())
	}
}

func TestPoolReusesReleasedBuffer(t *testing.T) {
	p := NewPool(1 << 20)
	b, _ := p.Get(context.Background(), 1000)
	data := &b.Bytes()[0]
	b.WriteAt(make([]byte, 1000), 0)
	b.Release()
	b2, _ := p.Get(context.Background(), 900)
	if &b2.Bytes()[0] != data {
		t.Fatal("released buffer was not reused")
	}
	if b2.Len() != 900 || b2.Written(0, 1) {
		t.Fatal("reused buffer not reset")
	}
	b2.Release()
}

func TestPoolGetWaitsAndHonoursContext(t *testing.T) {
	p := NewPool(100)
	a, ok := p.TryGet(80)
	if !ok {
		t.Fatal("TryGet failed on an empty pool")
	}
	if _, ok := p.TryGet(30); ok {
		t.Fatal("TryGet went past the budget")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, 30); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want DeadlineExceeded", err)
	}
	got := make(chan *Buffer)
	go func() {
		b, err := p.Get(context.Background(), 60)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	a.Release() // a waiter exists (or will): the 80 must not stay cached
	b := <-got
	b.Release()
	if p.HighWater() > 100 {
		t.Fatalf("high water %d", p.HighWater())
	}
}

// A cached buffer of the wrong size must not starve a waiter.
func TestPoolCacheDoesNotStarveWaiter(t *testing.T) {
	p := NewPool(100)
	small, _ := p.Get(context.Background(), 30)
	big, _ := p.Get(context.Background(), 40)
	small.Release() // cached: 30, in use: 40
	done := make(chan error)
	go func() {
		b, err := p.Get(context.Background(), 90)
		if err == nil {
			b.Release()
		}
		done <- err
	}()
	big.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPoolTooLarge(t *testing.T) {
	p := NewPool(10)
	if _, err := p.Get(context.Background(), 11); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	mustPanic(t, "zero budget", func() { NewPool(0) })
	mustPanic(t, "double release pooled", func() {
		b, _ := p.Get(context.Background(), 5)
		b.Release()
		b.Release()
	})
}

func BenchmarkAssemble64MiB(b *testing.B) {
	src := testkit.RandomBytes(64<<20, 3)
	p := NewPool(128 << 20)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		buf, err := p.Get(context.Background(), len(src))
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		part := len(src) / 8
		for off := 0; off < len(src); off += part {
			wg.Go(func() {
				w := buf.section(int64(off), int64(part))
				for q := src[off : off+part]; len(q) > 0; q = q[1<<20:] {
					w.Write(q[:1<<20])
				}
				w.Commit()
			})
		}
		wg.Wait()
		buf.Release()
	}
}

func TestPoolFitAndSlabs(t *testing.T) {
	p := NewPool(64 << 20)
	if p.SlabSize() != 16<<20 {
		t.Fatalf("SlabSize = %d", p.SlabSize())
	}
	for _, c := range [][2]int{{0, 0}, {1000, 1000}, {minBlock, minBlock}, {minBlock + 1, minBlock}, {3 << 20, 2 << 20}, {16 << 20, 16 << 20}, {16<<20 + 1, 16<<20 + 1}} {
		if got := p.Fit(c[0]); got != c[1] {
			t.Errorf("Fit(%d) = %d, want %d", c[0], got, c[1])
		}
	}
	if NewPool(100).SlabSize() != 0 || NewPool(1<<20).SlabSize() != 256<<10 || NewPool(100<<20).SlabSize() != 16<<20 {
		t.Error("slab sizes")
	}
}

// A long run of windows of varying sizes allocates about the budget, not
// the bytes it hands out.
func TestPoolLongRunAllocatesItsBudget(t *testing.T) {
	const budget = 64 << 20
	p := NewPool(budget)
	r := rand.New(rand.NewPCG(6, 16))
	var handed int64
	var held []*Buffer
	for range 5000 {
		size := 1<<20 + r.IntN(7<<20)
		if b, ok := p.TryGet(size); ok {
			handed += int64(size)
			held = append(held, b)
		}
		if len(held) > 6 || r.IntN(3) == 0 {
			i := r.IntN(len(held) + 1)
			if i < len(held) {
				held[i].Release()
				held = append(held[:i], held[i+1:]...)
			}
		}
	}
	for _, b := range held {
		b.Release()
	}
	s := p.Stats()
	if handed < 100*budget {
		t.Fatalf("handed out only %d bytes", handed)
	}
	if s.Allocated > budget*3/2 {
		t.Fatalf("allocated %d bytes for %d handed out: over 1.5x the %d budget (stats %+v)", s.Allocated, handed, budget, s)
	}
	if s.HighWater > budget || s.InUse != 0 || s.Held > budget {
		t.Fatalf("stats %+v", s)
	}
}

func TestPoolCloseDropsSlabs(t *testing.T) {
	p := NewPool(1 << 20) // slabs of 256 KiB
	a, _ := p.TryGet(300 << 10)
	b, _ := p.TryGet(100 << 10)
	c, _ := p.TryGet(100 << 10) // b's slab
	a.Release()                 // larger than a slab: allocated on its own, let go at once
	if s := p.Stats(); s.Held != 256<<10 || s.InUse != 256<<10 || s.Dropped != 300<<10 {
		t.Fatalf("before Close: %+v", s)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	b.Release()
	if s := p.Stats(); s.Held != 256<<10 {
		t.Fatalf("Close let a slab in use go, or kept a free one: %+v", s)
	}
	c.Release()
	if s := p.Stats(); s.Held != 0 || s.InUse != 0 || s.Dropped != 300<<10 {
		t.Fatalf("a slab freed after Close was kept: %+v", s)
	}
	if _, err := p.Get(context.Background(), 10); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if _, ok := p.TryGet(10); ok {
		t.Fatal("TryGet after Close succeeded")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// Blocks merge with their buddies: a slab cut into small buffers serves a
// whole-slab buffer once they are released, with no new memory.
func TestPoolBuddiesMerge(t *testing.T) {
	const budget = 4 << 20 // one slab of 1 MiB per quarter
	p := NewPool(budget)
	var bs []*Buffer
	for {
		b, ok := p.TryGet(minBlock)
		if !ok {
			break
		}
		bs = append(bs, b)
	}
	if len(bs) != budget/minBlock {
		t.Fatalf("%d small buffers, want %d", len(bs), budget/minBlock)
	}
	seen := map[*byte]bool{}
	for _, b := range bs {
		b.WriteAt([]byte{1}, 0)
		if seen[&b.Bytes()[0]] {
			t.Fatal("two buffers share memory")
		}
		seen[&b.Bytes()[0]] = true
	}
	for i := len(bs) - 1; i >= 0; i-- { // any order
		bs[(i*7)%len(bs)].Release()
	}
	var bigs []*Buffer
	for range 4 {
		b, ok := p.TryGet(1 << 20)
		if !ok {
			t.Fatal("released blocks did not merge back into slabs")
		}
		bigs = append(bigs, b)
	}
	if s := p.Stats(); s.Allocated != budget || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	for _, b := range bigs {
		b.Release()
	}
}

// A zero-size buffer is valid and takes nothing from the budget, with and
// without slabs (a budget under the smallest slab has none).
func TestPoolGetZero(t *testing.T) {
	for _, budget := range []int64{100 << 10, 64 << 20} {
		p := NewPool(budget)
		b, err := p.Get(context.Background(), 0)
		if err != nil || b == nil || len(b.Bytes()) != 0 {
			t.Fatalf("budget %d: Get(0) = %v, %v", budget, b, err)
		}
		b.Release()
		if b, ok := p.TryGet(0); !ok || len(b.Bytes()) != 0 {
			t.Fatalf("budget %d: TryGet(0) = %v, %v", budget, b, ok)
		} else {
			b.Release()
		}
		p.Close()
	}
}
