package mrdpool_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/zonalread/zonalread/internal/testserver"
	"github.com/zonalread/zonalread/mrdpool"
)

// checkedBucket opens the rig's bucket through a CheckingTransport.
func checkedBucket(t *testing.T, r *rig) *blob.Bucket {
	t.Helper()
	b, err := r.OpenBucketThrough(context.Background(), bucketName, func(rt http.RoundTripper) http.RoundTripper {
		return &mrdpool.CheckingTransport{Base: rt}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A server that answers ranged GETs with 200 and the whole object: through
// the CheckingTransport every range reads its own bytes, at offset 0 and
// elsewhere; without it, the reads fail.
func TestCheckingTransportSlicesIgnoredRange(t *testing.T) {
	r := newRig(t, 1<<20+17)
	r.HTTP.AddFault(testserver.Fault{Kind: testserver.FaultIgnoreRange})
	ranges := [][2]int64{{0, 1000}, {0, 1 << 20}, {5000, 1000}, {1<<20 + 16, 1}, {1000, 1<<20 + 17 - 1000}}

	plain := mrdpool.New(mrdpool.NewBlobBackend(r.Blob, r.name, nil), &mrdpool.Options{Retries: -1})
	defer plain.Close()
	for _, c := range ranges[:1] {
		if _, err := plain.ReadAt(context.Background(), make([]byte, c[1]), c[0]); err == nil {
			t.Fatalf("without the transport, ReadAt(%d bytes at %d) on a server ignoring Range succeeded: the fault does not bite", c[1], c[0])
		}
	}

	p := mrdpool.New(mrdpool.NewBlobBackend(checkedBucket(t, r), r.name, nil), &mrdpool.Options{Retries: -1})
	defer p.Close()
	before := r.HTTP.Stats().Faults[testserver.FaultIgnoreRange]
	for _, c := range ranges {
		checkRange(t, r, p, c[0], c[1])
	}
	if got := r.HTTP.Stats().Faults[testserver.FaultIgnoreRange] - before; got != int64(len(ranges)) {
		t.Fatalf("%d responses ignored Range, want %d", got, len(ranges))
	}
}

// A server that answers with another generation than the one the read
// pinned: the CheckingTransport fails the read with ErrObjectChanged (the
// storage client reports the generation it asked for, so nothing else
// notices).
func TestCheckingTransportWrongGeneration(t *testing.T) {
	r := newRig(t, 100<<10)
	p := mrdpool.New(mrdpool.NewBlobBackend(checkedBucket(t, r), r.name, nil), nil)
	defer p.Close()
	checkRange(t, r, p, 0, 100)
	r.HTTP.AddFault(testserver.Fault{Kind: testserver.FaultWrongGeneration})
	buf := make([]byte, 1000)
	n, err := p.ReadAt(context.Background(), buf, 5000)
	if !errors.Is(err, mrdpool.ErrObjectChanged) || n != 0 {
		t.Fatalf("ReadAt with a wrong generation = %d, %v; want ErrObjectChanged", n, err)
	}
	if s := r.HTTP.Stats(); s.Faults[testserver.FaultWrongGeneration] == 0 {
		t.Fatal("no response carried a wrong generation")
	}
	if st := p.Stats(); st.Retries != 0 {
		t.Fatalf("ErrObjectChanged was retried %d times", st.Retries)
	}

	// Without the transport the same answer goes unnoticed.
	plain := mrdpool.New(mrdpool.NewBlobBackend(r.Blob, r.name, nil), nil)
	defer plain.Close()
	if _, err := plain.ReadAt(context.Background(), buf, 5000); err == nil && bytes.Equal(buf, r.data[5000:6000]) {
		t.Log("without the CheckingTransport, a response of another generation is accepted")
	}
}

// Through the CheckingTransport a BlobBackend's read whose body breaks is
// resumed by the Pool, one GET per attempt (the storage client reopened
// it itself, without limit or backoff): with Retries -1 the first broken
// body fails the read; with retries, each break costs one retry. A 503
// before any body is still retried by the client, not refused.
func TestCheckingTransportLeavesResumesToThePool(t *testing.T) {
	r := newRig(t, 1<<20)
	b := checkedBucket(t, r)
	buf := make([]byte, 200000)
	for _, c := range []struct {
		retries     int
		fault       testserver.Fault
		ok          bool
		requests    int64
		poolRetries int64
	}{
		{-1, testserver.Fault{Kind: testserver.FaultReset, AfterBytes: 1000}, false, 1, 0},
		{-1, testserver.Fault{Kind: testserver.FaultShortBody, AfterBytes: 1000}, false, 1, 0},
		{4, testserver.Fault{Kind: testserver.FaultReset, AfterBytes: 1000, Times: 3}, true, 4, 3},
		{-1, testserver.Fault{Kind: testserver.Fault503, Times: 1}, true, 2, 0},
	} {
		r.HTTP.ClearFaults()
		r.HTTP.AddFault(c.fault)
		r.HTTP.ResetStats()
		p := mrdpool.New(mrdpool.NewBlobBackend(b, r.name, nil), &mrdpool.Options{Retries: c.retries, RetryBackoff: time.Millisecond})
		_, err := p.ReadAt(context.Background(), buf, 3000)
		if (err == nil) != c.ok {
			t.Fatalf("%v, Retries %d: ReadAt = %v, want success %v", c.fault.Kind, c.retries, err, c.ok)
		}
		if c.ok && !bytes.Equal(buf, r.data[3000:3000+len(buf)]) {
			t.Fatalf("%v: wrong bytes", c.fault.Kind)
		}
		if st, ps := r.HTTP.Stats(), p.Stats(); st.Requests != c.requests || ps.Retries != c.poolRetries {
			t.Fatalf("%v, Retries %d: %d requests and %d pool retries, want %d and %d", c.fault.Kind, c.retries, st.Requests, ps.Retries, c.requests, c.poolRetries)
		}
		p.Close()
	}
}
