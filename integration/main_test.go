package integration

import (
	"os"
	"testing"

	"github.com/zonalread/zonalread/internal/leaktest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childServerEnv) != "" {
		// Re-executed by startChildServer: serve the fakes until killed.
		os.Exit(runChildServer())
	}
	leaktest.VerifyTestMain(m)
}
