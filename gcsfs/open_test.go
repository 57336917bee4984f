package gcsfs_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/gcsfs"
	"github.com/zonalread/zonalread/internal/testkit"
	"github.com/zonalread/zonalread/internal/testserver"
)

// gs:// URLs through the emulator variables, over HTTP and zonal gRPC.
func TestOpenGSWithEmulator(t *testing.T) {
	srv := testserver.NewTest(t, &testserver.Options{Buckets: []string{"emu"}})
	srv.SetEmulatorEnv(t)
	data := testkit.RandomBytes(3<<20+1, 77)
	srv.Put(t, "dir/obj", data)
	for _, u := range []string{"gs://emu", "gs://emu?zonal=true", "gs://emu?zonal=false"} {
		f, err := gcsfs.Open(context.Background(), u, nil)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		if f.Zonal() != strings.Contains(u, "true") {
			t.Fatalf("%s: Zonal() = %v", u, f.Zonal())
		}
		before := srv.GRPC.Stats().Bytes
		got, err := f.ReadFile("dir/obj")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: ReadFile: %v", u, err)
		}
		if grpcBytes := srv.GRPC.Stats().Bytes - before; f.Zonal() != (grpcBytes > 0) {
			t.Fatalf("%s: %d bytes over gRPC", u, grpcBytes)
		}
		file, err := f.OpenContext(context.Background(), "dir/obj")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if n, err := file.WriteRangeContext(context.Background(), &buf, 1000, 2<<20); err != nil || n != 2<<20 {
			t.Fatalf("WriteRange = %d, %v", n, err)
		}
		if !bytes.Equal(buf.Bytes(), data[1000:1000+2<<20]) {
			t.Fatal("WriteRange bytes differ")
		}
		if _, err := file.WriteRangeContext(context.Background(), &buf, int64(len(data))-1, 2); !errors.Is(err, fs.ErrInvalid) {
			t.Fatalf("WriteRange past the end = %v", err)
		}
		file.Close()
		if _, err := gcsfs.Open(context.Background(), u+"&bogus=1", nil); err == nil && strings.Contains(u, "?") {
			t.Fatalf("unknown parameter accepted")
		}
		f.Close()
	}
}

func TestOpenGSWithoutCredentials(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	t.Setenv("STORAGE_EMULATOR_HOST_GRPC", "")
	// A missing credentials file fails the lookup at once, before any
	// attempt to reach a metadata server.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	_, err := gcsfs.Open(context.Background(), "gs://some-bucket", nil)
	if !errors.Is(err, gcsfs.ErrNoCredentials) {
		t.Fatalf("Open without credentials = %v, want ErrNoCredentials", err)
	}
}
