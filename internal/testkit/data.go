package testkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// RandomBytes returns n pseudo-random bytes, the same for the same (n, seed):
// object contents that no off-by-one read can match by accident, and that a
// failing run reproduces.
func RandomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b) // never fails
	return b
}

// SameBytes fails t unless got equals want. The message names what was
// compared, both lengths and SHA-256s and the first differing offset, never
// the bytes themselves (objects in these tests are megabytes).
func SameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	first := 0
	for first < len(got) && first < len(want) && got[first] == want[first] {
		first++
	}
	t.Fatalf("%s: %d bytes sha256 %x, want %d bytes sha256 %x (first difference at offset %d)",
		what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want), first)
}

// waitTimeout bounds WaitFor: far longer than any event a test waits on
// takes, even under -race on a loaded machine, so reaching it means the
// event never came.
const waitTimeout = 20 * time.Second

// WaitFor returns once cond reports true, and fails t if that has not
// happened within waitTimeout. It waits on an event the test cannot be
// told of by a channel (a counter another goroutine or the server bumps);
// cond must be safe to call concurrently with what it observes.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", waitTimeout, what)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

// CancelMidCall runs call in a goroutine with a context it cancels once
// started reports true (the call has reached the point under test: a
// request is at the backend, a range is queued), and fails t unless call
// then returns an error wrapping context.Canceled. It returns once call
// has returned.
func CancelMidCall(t testing.TB, started func() bool, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- call(ctx) }()
	WaitFor(t, "the call to start", started)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("call cancelled midway returned %v, want an error wrapping context.Canceled", err)
	}
}
