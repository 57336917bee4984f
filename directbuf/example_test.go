package directbuf_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/zonalread/zonalread/directbuf"
)

// Two fetches fill one buffer in place; a reader waits only for its bytes.
func Example() {
	pool := directbuf.NewPool(1 << 20)
	buf, err := pool.Get(context.Background(), 11)
	if err != nil {
		panic(err)
	}
	defer buf.Release()

	var wg sync.WaitGroup
	fetch := func(off int64, s string) {
		// A downloader writing in place, then making its range visible.
		copy(buf.Bytes()[off:], s)
		buf.Commit(off, int64(len(s)))
	}
	wg.Go(func() { fetch(0, "hello ") })
	wg.Go(func() { fetch(6, "world") })

	if err := buf.Wait(context.Background(), 0, 11); err != nil {
		panic(err)
	}
	wg.Wait()
	fmt.Println(string(buf.Bytes()))
	// Output: hello world
}
