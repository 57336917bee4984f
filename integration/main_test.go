package integration

import (
	"testing"

	"github.com/zonalread/zonalread/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
