package prefetch

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/testkit"
)

// arrivingFetcher is a ProgressFetcher whose bytes are final only at the
// end of their range, as a multi-range downloader's: ReadAtProgress writes
// a range's bytes and reports them arrived (not final) at once, then holds
// the range until gate closes. ReadAt (the engine's direct fetches) is not
// held. It records the offset of every ReadAtProgress, and how many have
// returned from their report.
type arrivingFetcher struct {
	*memFetcher
	gate chan struct{}

	mu       sync.Mutex
	offs     []int64
	reported int
}

func (a *arrivingFetcher) ReadAtProgress(ctx context.Context, p []byte, off int64, progress func(int64, bool)) (int, error) {
	a.mu.Lock()
	a.offs = append(a.offs, off)
	a.mu.Unlock()
	copy(p, a.data[off:])
	progress(int64(len(p)), false)
	a.mu.Lock()
	a.reported++
	a.mu.Unlock()
	select {
	case <-a.gate:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return len(p), nil
}

// requested returns the offsets asked for so far, sorted, and how many of
// those ranges have reported their bytes.
func (a *arrivingFetcher) requested() ([]int64, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(slices.Values(a.offs)), a.reported
}

// A window whose parts' bytes are final only at their end is read by
// nobody until its parts end, so no read asks for the next window: once
// half of it has arrived, the engine asks for the next window itself, so
// the link is not idle for a round trip after the window lands. It asks
// once, for one window, and no further than two windows ahead of the
// reader; every byte read is still the object's.
func TestArrivalAsksForTheNextWindow(t *testing.T) {
	a, e, p := holdTwoWindows(t)
	defer e.Close()
	offs, _ := a.requested()
	if want := []int64{1 * MiB, 3 * MiB, 5 * MiB, 7 * MiB}; !slices.Equal(offs, want) {
		t.Fatalf("ranges asked for while the first window is held: %v MiB, want %v", mibs(offs), mibs(want))
	}
	if st := e.Stats(); st.Served != 0 || st.Prefetched != 8*MiB {
		t.Fatalf("stats %+v: want 8 MiB prefetched and nothing served before the parts end", st)
	}
	close(a.gate)
	readOn(t, e, a.data, p, MiB)
}

// readOn checks that got holds the object's bytes before off, then reads
// the rest of the object sequentially (Read calls of MiB, as the reader
// before it) and checks that it is data.
func readOn(t *testing.T, e *Engine, data, got []byte, off int64) {
	t.Helper()
	testkit.SameBytes(t, "bytes before the held window ended", got, data[:off])
	buf := make([]byte, MiB)
	for off < int64(len(data)) {
		n, err := e.Read(context.Background(), buf, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		testkit.SameBytes(t, "bytes read on", buf[:n], data[off:off+int64(n)])
		off += int64(n)
	}
	if st := e.Stats(); st.Wasted != 0 {
		t.Fatalf("stats %+v: prefetched bytes wasted", st)
	}
}

// arrivalOpts make 4 MiB windows cut into two parts, a run started by
// a Read at offset 0.
var arrivalOpts = Options{StartAtZero: true, BlockSize: MiB, FirstWindow: 4 * MiB,
	MaxPrefetch: 4 * MiB, Concurrency: 2, MinPartSize: MiB}

// holdTwoWindows reads the first MiB of a 32 MiB object through an
// arrivingFetcher whose ranges are held, and returns once the parts of
// two windows have reported their bytes: the Read at 0 is fetched
// directly and starts the window [1, 5) MiB (two parts); their arrival
// asks for [5, 9) MiB; the arrival of that window's parts asks for
// nothing more (9 MiB is two windows past the reader). It returns the
// fetcher, the engine (the caller closes it) and the bytes read.
func holdTwoWindows(t *testing.T) (*arrivingFetcher, *Engine, []byte) {
	t.Helper()
	a := &arrivingFetcher{memFetcher: newMem(32 * MiB), gate: make(chan struct{})}
	e := New(a, int64(len(a.data)), &arrivalOpts)
	p := make([]byte, MiB)
	if _, err := e.Read(context.Background(), p, 0); err != nil {
		e.Close()
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the parts of [1, 9) MiB to report their bytes", func() bool {
		_, n := a.requested()
		return n == 4
	})
	return a, e, p
}

func mibs(offs []int64) []int64 {
	out := make([]int64, len(offs))
	for i, o := range offs {
		out[i] = o / MiB
	}
	return out
}

// heldBody is a response body that delivers its bytes, then holds its
// end (io.EOF) until gate closes or it is aborted.
type heldBody struct {
	*bytesBody
	gate    chan struct{}
	aborted chan struct{}
	once    sync.Once
}

func (h *heldBody) Read(p []byte) (int, error) {
	if h.r.Len() > 0 {
		n, _ := h.r.Read(p)
		return n, nil
	}
	select {
	case <-h.gate:
		return 0, io.EOF
	case <-h.aborted:
		return 0, io.ErrUnexpectedEOF
	}
}

func (h *heldBody) Abort() { h.once.Do(func() { close(h.aborted) }) }

// Adopted bodies whose bytes are final only at their end (CommitAtEnd: the
// gRPC reads of a zonal open) count their arrival the same way: the engine
// asks for the next window while they are still open.
func TestArrivalOfAdoptedPartsAsksForTheNextWindow(t *testing.T) {
	a := &arrivingFetcher{memFetcher: newMem(32 * MiB), gate: make(chan struct{})}
	close(a.gate) // the Fetcher's ranges end at once; the adopted bodies are held
	e := New(a, int64(len(a.data)), &arrivalOpts)
	defer e.Close()
	gate := make(chan struct{})
	var parts []AdoptedPart
	for off := int64(0); off < 4*MiB; off += 2 * MiB {
		body := &heldBody{bytesBody: newBody(a.data[off:off+2*MiB], io.EOF), gate: gate, aborted: make(chan struct{})}
		parts = append(parts, AdoptedPart{Off: off, N: 2 * MiB, Body: body, CommitAtEnd: true})
	}
	if !e.AdoptParts(parts, time.Minute) {
		t.Fatal("AdoptParts refused")
	}
	// The first read starts the run (window 4 MiB) and waits for its
	// part's end; the bodies' arrival has asked for [4, 8) MiB by then.
	read := make(chan error, 1)
	p := make([]byte, MiB)
	go func() {
		_, err := e.Read(context.Background(), p, 0)
		read <- err
	}()
	testkit.WaitFor(t, "a range of the next window", func() bool {
		offs, _ := a.requested()
		return slices.Contains(offs, 4*MiB)
	})
	select {
	case err := <-read:
		t.Fatalf("the read returned (%v) before its adopted part ended", err)
	default:
	}
	close(gate)
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	readOn(t, e, a.data, p, MiB)
}

// Close while the parts of two windows are held (their bytes arrived, not
// final) cancels them all and returns; later reads fail with
// fs.ErrClosed, and no fetch goroutine is left (goleak, TestMain).
func TestCloseWhileArrivalsHeld(t *testing.T) {
	_, e, p := holdTwoWindows(t)
	e.Close()
	if _, err := e.Read(context.Background(), p, MiB); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Read after Close: %v, want fs.ErrClosed", err)
	}
}
