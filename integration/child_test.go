package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// childServerEnv makes the test binary serve the fakes instead of running
// tests (see TestMain): a server in another process can be SIGKILLed the
// way a real one dies, with no chance to close its connections.
const childServerEnv = "ZONALREAD_INTEGRATION_CHILD_SERVER"

// Child server protocol, one line per message on the child's stdout:
// "ready <http host:port> <grpc host:port>", then "served <bytes>" as the
// bytes it has sent (both endpoints) grow. It exits when its stdin closes.
// Once it has sent the watermark (childServerEnv's value), it stops itself
// (SIGSTOP) after reporting it: it sends nothing more, its connections stay
// open, and the parent kills it. The parent reading the report late (a
// loaded machine) then cannot let a read finish before the kill.
const (
	childObject     = "big"
	childObjectSize = 64 << 20
	childSeed       = 64
)

// childShape caps the child's link so a 64 MiB read takes a few seconds
// and the parent can kill it mid-read.
var childShape = testserver.Shape{AggregateBandwidth: 32 << 20}

func runChildServer() int {
	watermark, err := strconv.ParseInt(os.Getenv(childServerEnv), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child server: watermark:", err)
		return 1
	}
	srv, err := testserver.Start(&testserver.Options{Buckets: []string{bucketName}, Shape: childShape})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := srv.PutObject(bucketName, childObject, testkit.RandomBytes(childObjectSize, childSeed)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := warmUp(srv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ready %s %s\n", strings.TrimPrefix(srv.HTTPURL(), "http://"), srv.GRPCAddr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	var last int64
	for range time.Tick(2 * time.Millisecond) {
		if n := srv.HTTP.Stats().Bytes + srv.GRPC.Stats().Bytes; n != last {
			last = n
			fmt.Printf("served %d\n", n)
			if n >= watermark {
				os.Stdout.Sync()
				syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			}
		}
	}
	return 0
}

// warmUp opens the object once over gRPC: the fake computes the whole
// object's checksums on the first open, which under the race detector takes
// longer than the tests' stall timeout.
func warmUp(srv *testserver.Server) error {
	ctx := context.Background()
	c, err := srv.GRPCClient(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	mrd, err := c.Bucket(bucketName).Object(childObject).NewMultiRangeDownloader(ctx)
	if err != nil {
		return err
	}
	return mrd.Close()
}

// childServer is a fake server in a child process.
type childServer struct {
	cmd        *exec.Cmd
	stdin      io.Closer
	http, grpc string        // host:port of each endpoint
	served     atomic.Int64  // bytes the child reported sent
	reached    chan struct{} // closed once served passes the watermark
	lines      chan struct{} // closed when the child's stdout ends
}

// startChildServer re-executes the test binary as a server and waits until
// it is ready. reached closes when the child has sent watermark bytes.
func startChildServer(t *testing.T, watermark int64) *childServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", childServerEnv, watermark))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childServer{cmd: cmd, stdin: stdin, reached: make(chan struct{}), lines: make(chan struct{})}
	t.Cleanup(func() {
		c.kill()
		<-c.lines // exec: read the pipe to its end before Wait
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		close(c.lines)
		t.Fatalf("child server did not start: %v", lines.Err())
	}
	if _, err := fmt.Sscanf(lines.Text(), "ready %s %s", &c.http, &c.grpc); err != nil {
		go func() { io.Copy(io.Discard, stdout); close(c.lines) }()
		t.Fatalf("child server said %q: %v", lines.Text(), err)
	}
	go func() {
		defer close(c.lines)
		closed := false
		for lines.Scan() {
			n, err := strconv.ParseInt(strings.TrimPrefix(lines.Text(), "served "), 10, 64)
			if err != nil {
				continue
			}
			c.served.Store(n)
			if n >= watermark && !closed {
				closed = true
				close(c.reached)
			}
		}
	}()
	return c
}

// kill SIGKILLs the child: its sockets die with it, unflushed.
func (c *childServer) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.stdin.Close()
}
