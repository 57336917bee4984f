package gcsfs_test

import (
	"context"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/gcsfs/gcsfstest"
)

type memHarness struct{ b *blob.Bucket }

func (h memHarness) Put(ctx context.Context, name string, data []byte) error {
	return h.b.WriteAll(ctx, name, data, nil)
}

func (h memHarness) Delete(ctx context.Context, name string) error { return h.b.Delete(ctx, name) }

func (h memHarness) FS(ctx context.Context, opts *gcsfs.Options) (*gcsfs.FS, error) {
	return gcsfs.New(ctx, h.b, opts)
}

func (h memHarness) Close() { h.b.Close() }

func TestConformanceMem(t *testing.T) {
	gcsfstest.RunConformanceTests(t, func(t *testing.T) gcsfstest.Harness {
		return memHarness{memblob.OpenBucket(nil)}
	})
}
