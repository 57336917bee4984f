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
	"flag"
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

// usageError is a bad command line: exit status 2, with the usage of the
// command printed after the message.
type usageError struct {
	cmd   string // the subcommand, "" at the top level
	msg   string
	usage string
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.msg
	}
	return e.cmd + ": " + e.msg
}

// helpRequest is -h: usage on stdout, exit status 0.
type helpRequest struct{ usage string }

func (h *helpRequest) Error() string { return "help requested" }

// exitCode maps run's error to the exit status: 0 for nil, 2 for a usage
// error, 1 for anything else.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	}
	var help *helpRequest
	if errors.As(err, &help) {
		return 0
	}
	return 1
}

// printError prints err as gcscat's one-line message (and, for a usage
// error, the usage).
func printError(w io.Writer, err error) {
	var ue *usageError
	if errors.As(err, &ue) {
		sep := " "
		if ue.cmd == "" {
			sep = ": "
		}
		fmt.Fprintf(w, "gcscat%s%s\n\n%s", sep, ue.Error(), ue.usage)
		return
	}
	fmt.Fprintf(w, "gcscat: %s\n", describe(err))
}

// flagSet is a subcommand's flags with its usage text.
type flagSet struct {
	*flag.FlagSet
	synopsis string // after "gcscat NAME "
	doc      string
}

func newFlagSet(name, synopsis, doc string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse errors come back as usageErrors; run prints them.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, synopsis: synopsis, doc: doc}
}

func (f *flagSet) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: gcscat %s %s\n\n%s\n", f.Name(), f.synopsis, strings.TrimSpace(f.doc))
	hasFlags := false
	f.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		b.WriteString("\nFlags:\n")
		f.SetOutput(&b)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
	return b.String()
}

// usageErr returns a usage error of this subcommand.
func (f *flagSet) usageErr(format string, a ...any) error {
	return &usageError{cmd: f.Name(), msg: fmt.Sprintf(format, a...), usage: f.usage()}
}

// parse parses args, allowing flags after positional arguments ("cat URL
// -r 0-9"); everything after "--" is positional. It returns the positional
// arguments.
func (f *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpRequest{usage: f.usage()}
			}
			return nil, f.usageErr("%v", err)
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// isSet reports whether the flag name was given on the command line.
func (f *flagSet) isSet(name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			set = true
		}
	})
	return set
}
