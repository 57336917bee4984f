// Command gcscat reads Google Cloud Storage objects through the gcsfs
// library: Rapid (zonal) buckets over gRPC multi-range downloaders, other
// buckets over ranged reads, with parallel windows for whole objects and the
// prefetch engine for sequential reads.
//
// Usage:
//
//	gcscat cat   [flags] URL...     write objects, or a byte range of them, to stdout
//	gcscat ls    [-l] [-R] URL...   list objects and prefixes
//	gcscat stat  URL...             show size, generation and update time
//	gcscat parquet [--rows N] URL   show a Parquet file's schema, row groups and first rows
//	gcscat bench [flags] URL        compare read strategies on one object
//	gcscat demo                     how to run the tour (make demo: cmd/gcscat-demo)
//
// URLs are gs://bucket/path/to/object (the query parameters zonal=auto|true|false
// and anonymous=true apply to the bucket) or file:///dir/path.
//
// Byte ranges (cat): -r START-END (END inclusive), -r START- (to the end) and
// -r -N (the last N bytes); --head N and --tail N. A START at or past the end
// of a non-empty object is an error; an END past the end is clipped to it, as
// is a suffix or --head/--tail longer than the object. -r, --head and --tail
// exclude each other.
//
// cat and bench take the gcsfs knobs --pool-size, --concurrency,
// --max-prefetch (and, for bench, --block-size), --zonal auto|on|off and
// --grpc (the same as --zonal on: object data over gRPC multi-range
// downloaders), and --stats, which prints the read counters to stderr. cat
// draws a progress bar on stderr for reads of 8 MiB or more when stderr is a
// terminal and stdout is not.
//
// Real buckets use Application Default Credentials ('gcloud auth
// application-default login' or GOOGLE_APPLICATION_CREDENTIALS); a missing
// credential is reported in one line. STORAGE_EMULATOR_HOST (host:port of the
// JSON/XML API) and STORAGE_EMULATOR_HOST_GRPC (host:port of the gRPC API)
// point gs:// URLs at an emulator instead.
//
// Exit status: 0 on success, 1 on an error, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"cat", "write objects, or a byte range of them, to stdout", runCat},
		{"ls", "list objects and prefixes", runLs},
		{"stat", "show an object's size, generation and update time", runStat},
		{"parquet", "show a Parquet file's schema, row groups and first rows", runParquet},
		{"bench", "compare read strategies on one object", runBench},
		{"demo", "tour the commands against a fake GCS: a program of its own, run 'make demo'", runDemo},
	}
}

const mainUsageHead = `gcscat reads Google Cloud Storage objects as fast as the link allows.

Usage:
  gcscat COMMAND [flags] ARGS...

Commands:
`

const mainUsageTail = `
URLs:
  gs://bucket/path/to/object   query parameters apply to the bucket:
                               ?zonal=auto|true|false, ?anonymous=true
  file:///dir/path             a local directory tree, read the same way

Real buckets use Application Default Credentials: run
'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS.
STORAGE_EMULATOR_HOST and STORAGE_EMULATOR_HOST_GRPC (host:port) point gs://
URLs at an emulator.

Run 'gcscat COMMAND -h' for the flags of a command; 'make demo' in the
repository for a tour.
Exit status: 0 ok, 1 error, 2 usage error.
`

func mainUsage() string {
	var b strings.Builder
	b.WriteString(mainUsageHead)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-6s %s\n", c.name, c.summary)
	}
	b.WriteString(mainUsageTail)
	return b.String()
}

// run runs gcscat with args (without the program name). It prints every
// error itself, to stderr, and returns it for exitCode.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	var help *helpRequest
	if errors.As(err, &help) {
		io.WriteString(stdout, help.usage)
		return nil
	}
	if err != nil {
		printError(stderr, err)
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{msg: "no command given", usage: mainUsage()}
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] {
					return c.run(ctx, []string{"-h"}, stdout, stderr)
				}
			}
		}
		return &helpRequest{usage: mainUsage()}
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return &usageError{msg: fmt.Sprintf("unknown command %q", name), usage: mainUsage()}
}
