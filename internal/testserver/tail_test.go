package testserver

import (
	"context"
	"math"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/zonalread/zonalread/internal/testkit"
)

// Every SlowEvery-th data response is slow, on both endpoints, metadata
// requests do not count, and SetShape starts the count again. A slow
// response waits SlowFactor x Latency (here: for ever), so it is still
// waiting when the test sees it counted, and ends when its caller cancels.
func TestSlowEvery(t *testing.T) {
	s := NewTest(t, nil)
	data := testkit.RandomBytes(64<<10, 3)
	s.Put(t, "obj", data)
	ctx := context.Background()
	c := httpClient(t, s.Server)
	obj := c.Bucket(testBucket).Object("obj")
	mrd := func(t *testing.T) *rangeReads {
		m, err := s.GRPCStorage.Bucket(testBucket).Object("obj").NewMultiRangeDownloader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return &rangeReads{m: m}
	}

	for _, ep := range []struct {
		name string
		e    *Endpoint
		read func(ctx context.Context, off int64) ([]byte, error)
	}{
		{"HTTP", s.HTTP, func(ctx context.Context, off int64) ([]byte, error) { return readRange(ctx, obj, off, 1000) }},
		{"gRPC", s.GRPC, nil},
	} {
		t.Run(ep.name, func(t *testing.T) {
			read := ep.read
			if read == nil {
				read = mrd(t).read
			}
			// Unshaped warm-up: the gRPC fake copies the object on first use.
			if _, err := read(ctx, 0); err != nil {
				t.Fatal(err)
			}
			ep.e.SetShape(Shape{Latency: time.Millisecond, SlowEvery: 3, SlowFactor: math.MaxInt})
			ep.e.ResetStats()
			for i := range 8 {
				if i%3 == 2 {
					// The 3rd and 6th: slow. Seen counted, then cancelled.
					testkit.CancelMidCall(t, func() bool { return ep.e.Stats().Slowed == int64(i/3+1) }, func(ctx context.Context) error {
						_, err := read(ctx, int64(i))
						return err
					})
					continue
				}
				got, err := read(ctx, int64(i))
				if err != nil {
					t.Fatalf("read %d: %v", i+1, err)
				}
				testkit.SameBytes(t, "range", got, data[i:i+1000])
				if _, err := obj.Attrs(ctx); err != nil { // metadata: not counted
					t.Fatal(err)
				}
			}
			if st := ep.e.Stats(); st.Slowed != 2 {
				t.Errorf("%d slow responses of 8, want 2", st.Slowed)
			}
			// A new shape starts the count again: its 3rd request is slow.
			ep.e.SetShape(Shape{SlowEvery: 3, SlowFactor: 1})
			ep.e.ResetStats()
			for i := range 7 {
				if _, err := read(ctx, int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			if st := ep.e.Stats(); st.Slowed != 2 {
				t.Errorf("%d slow responses of 7 after SetShape, want 2", st.Slowed)
			}
			ep.e.SetShape(Shape{})
		})
	}
}

func TestSlowedSaturates(t *testing.T) {
	for _, c := range []struct {
		d      time.Duration
		factor int
		want   time.Duration
	}{
		{time.Millisecond, 0, 10 * time.Millisecond},
		{time.Millisecond, 3, 3 * time.Millisecond},
		{time.Hour, math.MaxInt, math.MaxInt64},
		{0, 5, 0},
	} {
		if got := slowed(c.d, c.factor); got != c.want {
			t.Errorf("slowed(%v, %d) = %v, want %v", c.d, c.factor, got, c.want)
		}
	}
}

// rangeReads reads 1000-byte ranges through one multi-range downloader.
type rangeReads struct{ m *storage.MultiRangeDownloader }

// read returns the range at off, or ctx's error once ctx ends (the range
// itself stays on the stream until the downloader is closed: a
// MultiRangeDownloader cannot cancel one range).
func (r *rangeReads) read(ctx context.Context, off int64) ([]byte, error) {
	res := addRange(r.m, off, 1000)
	select {
	case <-res.done:
		return res.buf.Bytes(), res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
