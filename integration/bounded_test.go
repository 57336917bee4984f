package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// An endpoint nobody listens on (127.0.0.1:1, connection refused): Open,
// Stat, ReadDir, ReadFile and Glob end with a clear error within
// StallTimeout + 10 s on both backends, instead of the storage client
// retrying for ever.
func TestUnreachableEndpoint(t *testing.T) {
	forBothBackends(t, func(t *testing.T, zonal bool) {
		fsys := openEmulated(t, "127.0.0.1:1", "127.0.0.1:1", zonal, gcsfs.Options{StallTimeout: killStall})
		defer fsys.Close()
		calls := map[string]func() error{
			"Open":     func() error { _, err := fsys.Open("obj"); return err },
			"Stat":     func() error { _, err := fsys.Stat("obj"); return err },
			"ReadDir":  func() error { _, err := fsys.ReadDir("."); return err },
			"ReadFile": func() error { _, err := fsys.ReadFile("obj"); return err },
			"Glob":     func() error { _, err := fsys.Glob("*/x"); return err },
		}
		for _, name := range []string{"Open", "Stat", "ReadDir", "ReadFile", "Glob"} {
			start := time.Now()
			err := calls[name]()
			took := time.Since(start)
			t.Logf("%s: %v after %v", name, err, took.Round(time.Millisecond))
			if err == nil {
				t.Fatalf("%s against an unreachable server: no error", name)
			}
			if took > killCallEnds {
				t.Fatalf("%s took %v, want under %v", name, took, killCallEnds)
			}
			if msg := err.Error(); !errors.Is(err, gcsfs.ErrStalled) && !strings.Contains(msg, "connection refused") {
				t.Fatalf("%s: %v: want ErrStalled or the refused connection named", name, err)
			}
		}
	})
}

// File.Close and FS.Close end reads blocked on a server that sends nothing
// (with no stall bound, only Close can): the blocked calls return errors
// wrapping fs.ErrClosed, and Close does not wait for them.
func TestCloseEndsBlockedRead(t *testing.T) {
	forBoth(t, func(t *testing.T, r *rig) {
		src := testkit.RandomBytes(4<<20, 6)
		r.Put(t, "obj", src)
		for _, op := range []string{"Read", "ReadAt", "WriteTo", "ReadFile"} {
			t.Run(op, func(t *testing.T) {
				fsys := r.fs(t, &gcsfs.Options{StallTimeout: -1, DisablePrefetch: true})
				file := open(t, fsys, "obj")
				r.ep().ClearFaults()
				r.ep().ResetStats()
				r.ep().AddFault(testserver.Fault{Kind: testserver.FaultStall, AfterBytes: 1000})
				errc := make(chan error, 1)
				go func() {
					var err error
					switch op {
					case "Read":
						_, err = file.Read(make([]byte, 1<<20))
					case "ReadAt":
						_, err = file.ReadAt(make([]byte, 1<<20), 100)
					case "WriteTo":
						_, err = file.WriteTo(&bytes.Buffer{})
					case "ReadFile":
						_, err = fsys.ReadFile("obj")
					}
					errc <- err
				}()
				// The read is blocked once the server has stalled it.
				for faults(r.ep(), testserver.FaultStall) == 0 {
					runtime.Gosched()
				}
				if op == "ReadFile" {
					fsys.Close()
				} else {
					file.Close()
				}
				if err := <-errc; !errors.Is(err, fs.ErrClosed) {
					t.Fatalf("%s blocked when Close was called: err = %v, want fs.ErrClosed", op, err)
				}
				r.ep().ClearFaults()
				file.Close()
			})
		}
	})
}

// cancelAt is a writer that cancels its context once at least at bytes
// have been written to it, and keeps every byte.
type cancelAt struct {
	bytes.Buffer
	at     int
	cancel context.CancelFunc
}

func (w *cancelAt) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if w.Len() >= w.at {
		w.cancel()
	}
	return n, err
}

// WriteToContext cancelled at random points, 200 times per backend: it
// never returns (n < size, nil); the n bytes written are the object's
// first n; the offset moved by n.
func TestWriteToCancelledAtRandom(t *testing.T) {
	const runs = 200
	forBoth(t, func(t *testing.T, r *rig) {
		src := testkit.RandomBytes(256<<10+5, 7)
		r.Put(t, "obj", src)
		// Windows of 32 KiB in two parts: a cancel lands before, inside or
		// between windows.
		fsys := r.fs(t, &gcsfs.Options{MaxPrefetch: 32 << 10, BlockSize: 16 << 10, MinPartSize: 16 << 10, Concurrency: 2})
		file := open(t, fsys, "obj")
		rng := rand.New(rand.NewPCG(11, uint64(len(t.Name()))))
		var cancelled, whole int
		for i := range runs {
			if _, err := file.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			// One run in nine or so cancels only after the last byte.
			w := &cancelAt{at: rng.IntN(len(src) + len(src)/8), cancel: cancel}
			if i%10 == 0 {
				cancel() // before the call
			}
			n, err := file.WriteToContext(ctx, w)
			cancel()
			if n != int64(w.Len()) {
				t.Fatalf("run %d: WriteTo says %d bytes, the writer got %d", i, n, w.Len())
			}
			testkit.SameBytes(t, "bytes before the cancel", w.Bytes(), src[:n])
			switch {
			case n < int64(len(src)) && err == nil:
				t.Fatalf("run %d: cancelled at %d: returned (%d < %d, nil)", i, w.at, n, len(src))
			case err != nil && !errors.Is(err, context.Canceled):
				t.Fatalf("run %d: err = %v, want context.Canceled", i, err)
			case err != nil:
				cancelled++
			default:
				whole++
			}
			if off, _ := file.Seek(0, io.SeekCurrent); off != n {
				t.Fatalf("run %d: offset %d after writing %d bytes", i, off, n)
			}
		}
		t.Logf("%d runs: %d cancelled, %d whole", runs, cancelled, whole)
		if cancelled == 0 {
			t.Fatal("no run was cut short: the test did not cancel mid-read")
		}
	})
}

// A server that stops sending mid-body: with no context deadline the read
// ends with ErrStalled after StallTimeout, the stalled downloader is
// replaced and the file reads again once the server heals; the Logger got
// the retries (Debug) and the stall (Warn) with object name, offset and
// attempt. A caller's deadline shorter than the stall timeout still wins.
func TestStallTimeoutAndLogger(t *testing.T) {
	forBoth(t, func(t *testing.T, r *rig) {
		src := testkit.RandomBytes(2<<20, 8)
		r.Put(t, "obj", src)
		var logs testkit.SyncBuffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		// Long enough for an open under a loaded race-detector run.
		fsys := r.fs(t, &gcsfs.Options{StallTimeout: 2 * time.Second, Logger: logger, DisablePrefetch: true})
		file := open(t, fsys, "obj")

		r.ep().AddFault(testserver.Fault{Kind: testserver.Fault503, Times: 1})
		r.ep().AddFault(testserver.Fault{Kind: testserver.FaultReset, AfterBytes: 1000, Times: 1})
		buf := make([]byte, 256<<10)
		if _, err := file.ReadAt(buf, 0); err != nil {
			t.Fatalf("read with a 503 and a reset: %v", err)
		}
		testkit.SameBytes(t, "read after a reset", buf, src[:len(buf)])

		r.ep().AddFault(testserver.Fault{Kind: testserver.FaultStall, AfterBytes: 1000})
		_, err := file.ReadAt(buf, 4096)
		if !errors.Is(err, gcsfs.ErrStalled) {
			t.Fatalf("stalled read: err = %v, want ErrStalled", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err = file.ReadAtContext(ctx, buf, 4096)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, gcsfs.ErrStalled) {
			t.Fatalf("stalled read with a shorter deadline: err = %v, want DeadlineExceeded", err)
		}
		r.ep().ClearFaults()
		if _, err := file.ReadAt(buf, 4096); err != nil {
			t.Fatalf("read after the server healed: %v", err)
		}
		testkit.SameBytes(t, "read after the stall", buf, src[4096:4096+len(buf)])
		if s := fsys.Stats(); s.Replaced == 0 {
			t.Fatalf("stats %+v: the stalled downloader was not replaced", s)
		}
		l := logs.String()
		for _, want := range []string{"level=WARN", "stalled", "object=obj", "offset=", "level=DEBUG", "attempt="} {
			if !strings.Contains(l, want) {
				t.Fatalf("log lacks %q:\n%s", want, l)
			}
		}
	})
}
