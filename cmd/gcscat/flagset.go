package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

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
