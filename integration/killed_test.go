package integration

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
)

// killStall is the StallTimeout of the killed-server tests; the issue asks
// every call to end within it plus 10 s, and Close within 1 s.
const (
	killStall    = 2 * time.Second
	killCallEnds = killStall + 10*time.Second
	killCloseEnd = time.Second
)

// openEmulated opens gs://it through gcsfs.Open, the way a user would, with
// the emulator variables pointing at httpHost and grpcHost.
func openEmulated(t *testing.T, httpHost, grpcHost string, zonal bool, opts gcsfs.Options) *gcsfs.FS {
	t.Helper()
	t.Setenv("STORAGE_EMULATOR_HOST", httpHost)
	t.Setenv("STORAGE_EMULATOR_HOST_GRPC", grpcHost)
	fsys, err := gcsfs.Open(context.Background(), fmt.Sprintf("gs://%s?zonal=%t", bucketName, zonal), &opts)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// prefixWriter checks that what it is given is a prefix of want.
type prefixWriter struct {
	want []byte
	n    int
	bad  bool
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > len(w.want) || string(p) != string(w.want[w.n:w.n+len(p)]) {
		w.bad = true
	}
	w.n += len(p)
	return len(p), nil
}

// The server process is SIGKILLed in the middle of a 64 MiB sequential
// read, a ReadFile and a WriteTo running at once, on each backend: every
// call returns an error within StallTimeout + 10 s, the bytes before it
// are the object's, Close returns within 1 s, and goleak (TestMain) finds
// nothing left.
func TestServerKilledMidRead(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	src := testkit.RandomBytes(childObjectSize, childSeed)
	ops := []string{"Read", "ReadFile", "WriteTo"}
	run := func(op string, fsys *gcsfs.FS, file *gcsfs.File) (int64, error) {
		w := &prefixWriter{want: src}
		switch op {
		case "Read":
			buf := make([]byte, 1<<20)
			for {
				n, err := file.Read(buf)
				w.Write(buf[:n])
				if err != nil {
					return int64(w.n), errors.Join(err, checkPrefix(w))
				}
			}
		case "ReadFile":
			b, err := fsys.ReadFile(childObject)
			w.Write(b)
			return int64(len(b)), errors.Join(err, checkPrefix(w))
		default:
			n, err := file.WriteTo(w)
			return n, errors.Join(err, checkPrefix(w))
		}
	}
	type result struct {
		op  string
		n   int64
		err error
		at  time.Time
	}
	forBothBackends(t, func(t *testing.T, zonal bool) {
		// Each call has read about 16 MiB when the server dies.
		child := startChildServer(t, int64(len(ops))*16<<20)
		fsys := openEmulated(t, child.http, child.grpc, zonal, gcsfs.Options{StallTimeout: killStall})
		var files []*gcsfs.File
		res := make(chan result, len(ops))
		for _, op := range ops {
			file, err := fsys.OpenContext(context.Background(), childObject)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, file)
			go func() {
				n, err := run(op, fsys, file)
				res <- result{op, n, err, time.Now()}
			}()
		}
		// The server stops itself (SIGSTOP) once it has sent the
		// watermark. On a loaded machine this test may learn of it late,
		// after a call has seen no byte for StallTimeout: that call failed
		// with the stall the kill would have caused, which is right. A call
		// that ends any other way before the kill is wrong.
		var early []result
	waitReached:
		for {
			select {
			case <-child.reached:
				break waitReached
			case r := <-res:
				if !errors.Is(r.err, gcsfs.ErrStalled) {
					t.Fatalf("%s ended before the kill: %d bytes, %v", r.op, r.n, r.err)
				}
				if early = append(early, r); len(early) == len(ops) {
					// All stalled: the server must still have stopped at
					// its watermark, which this test is about to hear of.
					select {
					case <-child.reached:
						break waitReached
					case <-time.After(killCallEnds):
						t.Fatalf("every call stalled and the server never reached its watermark: %v", r.err)
					}
				}
			}
		}
		child.kill()
		killed := time.Now()
		deadline := time.After(killCallEnds)
		for i := range ops {
			var r result
			if i < len(early) {
				r = early[i] // stalled before the kill
			} else {
				select {
				case r = <-res:
				case <-deadline:
					buf := make([]byte, 1<<20)
					t.Fatalf("a call is still blocked %v after the server was killed; goroutines:\n%s", killCallEnds, buf[:runtime.Stack(buf, true)])
				}
			}
			if r.err == nil {
				t.Fatalf("%s returned no error after the server was killed (%d bytes)", r.op, r.n)
			}
			t.Logf("%s: error %v after the kill (%d of %d bytes): %v", r.op, r.at.Sub(killed).Round(time.Millisecond), r.n, len(src), r.err)
		}
		start := time.Now()
		for _, file := range files {
			file.Close()
		}
		fsys.Close()
		closing := time.Since(start)
		t.Logf("Close took %v; the server had sent %d bytes", closing.Round(time.Microsecond), child.served.Load())
		if closing > killCloseEnd {
			t.Fatalf("Close took %v", closing)
		}
	})
}

// forBothBackends runs fn for the HTTP range-reader path and the gRPC MRD
// path, with no shared rig (for tests that bring their own server).
func forBothBackends(t *testing.T, fn func(t *testing.T, zonal bool)) {
	for _, zonal := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP", true: "MRD"}[zonal], func(t *testing.T) { fn(t, zonal) })
	}
}

func checkPrefix(w *prefixWriter) error {
	if w.bad {
		return errors.New("bytes differ from the object's")
	}
	return nil
}
