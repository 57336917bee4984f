// Package leaktest runs goleak over a package's tests with the ignores the
// project's dependencies need.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// ignores are goroutines started by dependencies at init, not by our code.
var ignores = []goleak.Option{
	// go.opencensus.io (linked in by cloud.google.com/go/storage) starts a
	// stats worker in an init function that never ends.
	goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
}

// VerifyTestMain runs the tests, then fails if any goroutine is left.
func VerifyTestMain(m *testing.M) { goleak.VerifyTestMain(m, ignores...) }

// VerifyNone fails t at its end if goroutines are left that were not
// running when VerifyNone was called (or are dependencies' init
// goroutines): for a test that runs beside long-lived goroutines of
// earlier tests, such as a Beam runner's job server.
func VerifyNone(t *testing.T) {
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, ignores...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
