package gcsfs_test

import (
	"strings"
	"testing"

	"gocloud.dev/blob/fileblob"

	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
)

// fileHarness is a file:// bucket in a temporary directory.
type fileHarness struct{ memHarness }

// Supports implements gcsfstest.NameLimiter: a file system resolves "."
// elements and a leading "/", so "a/./b" and "/a" would be stored as "a/b"
// and "a", and a file cannot also be a directory. (fileblob escapes "//",
// "../" and a trailing "/", so those names round-trip.)
func (fileHarness) Supports(name string, stored []string) bool {
	if strings.Contains("/"+name+"/", "/./") || strings.HasPrefix(name, "/") {
		return false
	}
	for _, s := range stored {
		if strings.HasPrefix(name, s+"/") || strings.HasPrefix(s, name+"/") {
			return false
		}
	}
	return true
}

func TestConformanceFile(t *testing.T) {
	gcsfstest.RunConformanceTests(t, func(t *testing.T) gcsfstest.Harness {
		b, err := fileblob.OpenBucket(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return fileHarness{memHarness{b}}
	})
}
