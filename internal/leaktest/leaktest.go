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
