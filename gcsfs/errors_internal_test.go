package gcsfs

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/mrdpool"
)

// An error from mrdpool seen at gcsfs's boundary matches gcsfs's sentinel
// and mrdpool's, reads "gcsfs: ...", and keeps the rest of its chain.
func TestOwnWrapsLowerSentinels(t *testing.T) {
	cause := errors.New("stream reset")
	lower := fmt.Errorf("%w: obj: no byte for 1s at offset 5 after 4 attempts: %w",
		mrdpool.ErrStalled, fmt.Errorf("%w: obj: %w", mrdpool.ErrChecksum, cause))
	err := pathErr("read", "obj", lower)
	for _, want := range []error{ErrStalled, mrdpool.ErrStalled, ErrChecksum, mrdpool.ErrChecksum, cause} {
		if !errors.Is(err, want) {
			t.Errorf("errors.Is(%v, %v) = false", err, want)
		}
	}
	for _, not := range []error{ErrObjectChanged, ErrShortRange, fs.ErrClosed} {
		if errors.Is(err, not) {
			t.Errorf("errors.Is(%v, %v) = true", err, not)
		}
	}
	const want = "read obj: gcsfs: no progress: obj: no byte for 1s at offset 5 after 4 attempts: gcsfs: checksum mismatch: obj: stream reset"
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
	// Owning twice changes nothing.
	var pe *fs.PathError
	if !errors.As(err, &pe) || own(pe.Err) != pe.Err {
		t.Errorf("own of an owned error is not the same error")
	}
	// Errors without a lower sentinel pass through as they are.
	if own(fs.ErrNotExist) != fs.ErrNotExist || own(nil) != nil {
		t.Error("own changed an error with no lower sentinel")
	}
	// The sentinels themselves wrap the lower ones.
	for _, s := range sentinels {
		if !errors.Is(s, s.lower) || !strings.HasPrefix(s.Error(), "gcsfs: ") {
			t.Errorf("sentinel %q does not wrap %q or does not name gcsfs", s, s.lower)
		}
	}
}
