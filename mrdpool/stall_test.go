package mrdpool

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/testkit"
)

// A range that receives no byte for the stall timeout fails with
// ErrStalled (not the caller's deadline), its downloader is replaced, the
// stall is logged with the object's name, and the next read works on a
// fresh downloader.
func TestStallFailsRangeAndReplacesDownloader(t *testing.T) {
	data := testkit.RandomBytes(10000, 1)
	b := &fakeBackend{data: data, shareable: true}
	var logs testkit.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := New(b, &Options{StallTimeout: 50 * time.Millisecond, Logger: logger, Object: "stall-obj"})
	defer p.Close()
	// Open the downloader first: on a loaded machine a slow open must not
	// stand in for the stall under test.
	if _, err := p.ReadAt(context.Background(), make([]byte, 1), 0); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.dropAll = true
	b.mu.Unlock()
	_, err := p.ReadAt(context.Background(), make([]byte, 100), 10)
	if !errors.Is(err, ErrStalled) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled range: err = %v, want ErrStalled and not DeadlineExceeded", err)
	}
	if s := p.Stats(); s.Replaced != 1 {
		t.Fatalf("stats %+v: want the stalled downloader replaced", s)
	}
	if l := logs.String(); !strings.Contains(l, "stalled") || !strings.Contains(l, "object=stall-obj") || !strings.Contains(l, "offset=10") {
		t.Fatalf("log does not report the stall with object and offset:\n%s", l)
	}
	b.mu.Lock()
	b.dropAll = false
	b.mu.Unlock()
	got := make([]byte, 100)
	if _, err := p.ReadAt(context.Background(), got, 10); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[10:110]) || b.opens.Load() != 2 {
		t.Fatalf("read after stall: bytes ok %v, %d opens (want 2)", bytes.Equal(got, data[10:110]), b.opens.Load())
	}
}

// The caller's deadline wins over a longer stall timeout.
func TestCallerDeadlineBeatsStallTimeout(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), shareable: true, dropAll: true}
	p := New(b, &Options{StallTimeout: time.Hour})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrStalled) {
		t.Fatalf("err = %v, want the caller's DeadlineExceeded", err)
	}
}

// An open that never answers fails with ErrStalled.
func TestStalledOpen(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), openDelay: make(chan struct{})}
	p := New(b, &Options{StallTimeout: 30 * time.Millisecond})
	defer p.Close()
	if _, err := p.Info(context.Background()); !errors.Is(err, ErrStalled) {
		t.Fatalf("Info on a silent server: err = %v, want ErrStalled", err)
	}
	if _, err := p.ReadAt(context.Background(), make([]byte, 10), 0); !errors.Is(err, ErrStalled) {
		t.Fatalf("ReadAt on a silent server: err = %v, want ErrStalled", err)
	}
}

// A negative StallTimeout turns the bound off: only ctx ends the wait.
func TestStallTimeoutOff(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), shareable: true, dropAll: true}
	p := New(b, &Options{StallTimeout: -1})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// Closing the pool ends a range whose downloader never calls back, with an
// error wrapping fs.ErrClosed.
func TestCloseEndsSilentRange(t *testing.T) {
	b := &fakeBackend{data: testkit.RandomBytes(1000, 1), shareable: true, dropAll: true}
	p := New(b, &Options{StallTimeout: -1})
	errc := make(chan error)
	go func() {
		_, err := p.ReadAt(context.Background(), make([]byte, 10), 0)
		errc <- err
	}()
	for b.adds.Load() == 0 {
		runtime.Gosched()
	}
	p.Close()
	if err := <-errc; !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

// WrapStalled marks only the stall bound's own expiry.
func TestWrapStalled(t *testing.T) {
	ctx, cancel := WithStallTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if err := WrapStalled(ctx, ctx.Err(), "stat x"); !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "stat x") {
		t.Fatalf("err = %v", err)
	}
	parent, pcancel := context.WithCancel(context.Background())
	ctx2, cancel2 := WithStallTimeout(parent, time.Hour)
	defer cancel2()
	pcancel()
	if err := WrapStalled(ctx2, ctx2.Err(), "stat x"); errors.Is(err, ErrStalled) {
		t.Fatalf("caller's cancel reported as a stall: %v", err)
	}
}
