package gcsfs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/zonalread/zonalread/gcsfs"
)

// Every wait is bounded: a read that gets no byte for StallTimeout fails
// with ErrStalled, and Logger reports retries, stalls and replaced
// downloaders.
func ExampleOptions_stallTimeout() {
	ctx := context.Background()
	fsys, err := gcsfs.Open(ctx, "mem://", &gcsfs.Options{
		StallTimeout: 10 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fsys.Close()
	if err := fsys.Bucket().WriteAll(ctx, "greeting.txt", []byte("hello\n"), nil); err != nil {
		fmt.Println(err)
		return
	}
	data, err := fsys.ReadFile("greeting.txt")
	switch {
	case errors.Is(err, gcsfs.ErrStalled):
		fmt.Println("the server stopped answering:", err)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Print(string(data))
	}
	// Output: hello
}
