package mrdpool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/mrdpool"
)

// A pool reads ranges of one object through a few downloaders; here ranged
// reads of an in-memory bucket (on a zonal bucket, NewMRDBackend gives real
// multi-range downloaders behind the same API). A logical read is split
// into parts by the caller and each part read with ReadAt, concurrently.
func Example() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	if err := bucket.WriteAll(ctx, "greeting.txt", []byte("hello, multi-range world"), nil); err != nil {
		fmt.Println(err)
		return
	}

	pool := mrdpool.New(mrdpool.NewBlobBackend(bucket, "greeting.txt", nil), &mrdpool.Options{PoolSize: 2})
	defer pool.Close()
	info, err := pool.Info(ctx) // the first open pins the object's size and generation
	if err != nil {
		fmt.Println(err)
		return
	}

	// Split the whole object into 3 parts read in parallel into one buffer.
	buf := make([]byte, info.Size)
	const parts = 3
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for i := range parts {
		off, end := info.Size*int64(i)/parts, info.Size*int64(i+1)/parts
		wg.Go(func() { _, errs[i] = pool.ReadAt(ctx, buf[off:end], off) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Printf("%d bytes: %s\n", info.Size, buf)

	// A range outside the object reaches no downloader.
	_, err = pool.ReadAt(ctx, make([]byte, 10), info.Size-5)
	fmt.Println(errors.Is(err, mrdpool.ErrRange))
	// Output:
	// 24 bytes: hello, multi-range world
	// true
}
