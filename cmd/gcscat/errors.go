package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/zonalread/zonalread/gcsfs"
)

// errIsDir is cat's error for a URL that names a prefix.
var errIsDir = errors.New("is a directory (a prefix), not an object: list it with gcscat ls")

// credentialsError is a failed lookup of Application Default Credentials.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string {
	const fix = "run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
	if p := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); p != "" {
		why := "not a usable credentials file"
		if _, err := os.Stat(p); err != nil {
			why = "no such file"
		}
		return fmt.Sprintf("cannot load Google Cloud credentials from GOOGLE_APPLICATION_CREDENTIALS=%s (%s): %s", p, why, fix)
	}
	return "no Google Cloud credentials found: " + fix
}

func (e *credentialsError) Unwrap() error { return e.err }

// describe turns an error into gcscat's one-line message: the common
// failures in plain words, anything else as the library said it.
func describe(err error) string {
	var ce *credentialsError
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &ce):
		return ce.Error()
	case errors.As(err, &re):
		// Never print a response body: it may hold a token.
		code := re.ErrorCode
		if code == "" {
			code = "HTTP " + strconv.Itoa(statusOf(re))
		}
		return fmt.Sprintf("Google Cloud rejected the credentials (%s): run 'gcloud auth application-default login' or check GOOGLE_APPLICATION_CREDENTIALS", code)
	case strings.Contains(err.Error(), "could not find default credentials"):
		return (&credentialsError{}).Error()
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	var oe *objectError
	if errors.As(err, &oe) {
		switch {
		case errors.Is(oe.err, fs.ErrNotExist):
			return oe.url + ": no such object"
		case errors.Is(oe.err, gcsfs.ErrObjectChanged):
			return oe.url + ": the object changed while it was read (a new generation was written); try again"
		}
	}
	return err.Error()
}

func statusOf(re *oauth2.RetrieveError) int {
	if re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// objectError is an error about one object, named by its URL.
type objectError struct {
	url string
	err error
}

func (e *objectError) Error() string { return e.url + ": " + e.err.Error() }

func (e *objectError) Unwrap() error { return e.err }

// objErr wraps err (if not nil) with the URL it is about.
func objErr(url string, err error) error {
	if err == nil {
		return nil
	}
	return &objectError{url: url, err: err}
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
