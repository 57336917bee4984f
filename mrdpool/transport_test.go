package mrdpool_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

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
