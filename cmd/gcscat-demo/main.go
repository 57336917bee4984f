// Command gcscat-demo tours gcscat against in-process fake GCS servers:
// `make demo` builds gcscat and runs it. It is a program of its own so that
// the shipped gcscat binary does not link the fake servers.
//
// Usage:
//
//	gcscat-demo [-gcscat PATH] [-size SIZE]
//
// -gcscat names the gcscat binary to tour (default: a gcscat next to this
// program, else the one on PATH). Exit status: 0 when every step did what
// the tour expects, 1 otherwise, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/zonalread/zonalread/cmd/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	gcscat string
	demo   demo.Options
}

func parseArgs(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("gcscat-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gcscat-demo [flags]\n\n%s\n\nFlags:\n", demo.Doc)
		fs.PrintDefaults()
	}
	c := &config{}
	fs.StringVar(&c.gcscat, "gcscat", "", "the gcscat binary to tour (default: gcscat next to this program, else on PATH)")
	c.demo.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: gcscat-demo takes no arguments, got %q", demo.ErrUsage, fs.Args())
	}
	return c, c.demo.Check()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "gcscat-demo: %v\n", err)
		return 2
	}
	bin, err := findGcscat(c.gcscat)
	if err != nil {
		fmt.Fprintf(stderr, "gcscat-demo: %v\n", err)
		return 1
	}
	if err := demo.Run(ctx, c.demo, stdout, execRunner(bin)); err != nil {
		fmt.Fprintf(stderr, "gcscat-demo: %v\n", err)
		return 1
	}
	return 0
}

// findGcscat returns the gcscat binary to tour: path if given, else a
// gcscat next to this program, else gcscat on PATH.
func findGcscat(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	if self, err := os.Executable(); err == nil {
		if p, err := exec.LookPath(filepath.Join(filepath.Dir(self), "gcscat")); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("gcscat")
	if err != nil {
		return "", fmt.Errorf("no gcscat binary found: run 'make demo', or build one with 'go build -o DIR/gcscat ./cmd/gcscat' and pass -gcscat DIR/gcscat")
	}
	return p, nil
}

// execRunner runs the gcscat binary at bin as a child process, which finds
// the fake servers through the emulator variables demo.Run sets.
func execRunner(bin string) demo.Runner {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &exit) && exit.ExitCode() >= 0:
			return exit.ExitCode()
		}
		fmt.Fprintf(stderr, "gcscat-demo: running %s: %v\n", bin, err)
		return -1
	}
}
