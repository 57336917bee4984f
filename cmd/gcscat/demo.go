package main

import (
	"context"
	"io"
)

const demoDoc = `
The tour of gcscat against in-process fake GCS servers is a program of its
own, cmd/gcscat-demo, so that gcscat does not ship the fake servers. In the
repository, run:

  make demo

(which builds gcscat and runs 'go run ./cmd/gcscat-demo -gcscat PATH').`

// runDemo tells where the demo went.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("demo", "", demoDoc)
	if _, err := f.parse(args); err != nil {
		return err
	}
	return f.usageErr("the demo is a separate program: run 'make demo' in the repository")
}
