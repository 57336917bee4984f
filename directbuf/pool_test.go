package directbuf

import (
	"context"
	"errors"
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
