// Package baseline holds the reader the benchmarks (gcscat bench,
// cmd/zonalbench) compare zonalread with: fsspec's default cache over
// gocloud ranged reads. One implementation, so that both commands measure
// the same thing.
package baseline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"gocloud.dev/blob"
)

// DefaultReadahead is fsspec's default block size (gcsfs's
// default_block_size, 5 MiB): how far past a read that misses the cache
// the next fetch reaches.
const DefaultReadahead = 5 << 20

// Readahead is fsspec's "readahead" cache (fsspec.caching.ReadAheadCache,
// the default cache of Python gcsfs files) over one object of a gocloud
// bucket. It holds one block of the object. A read inside the block is a
// copy. A read that starts inside the block but runs past its end keeps
// the block's tail and fetches from the block's end; any other read
// fetches from its own offset. Either fetch reaches the readahead given to
// NewReadahead past the read's end (clipped to the object) with one
// NewRangeReader, and the fetched bytes replace the block.
//
// A Readahead is not safe for concurrent use.
type Readahead struct {
	bucket    *blob.Bucket
	name      string
	size      int64
	readahead int64

	block   []byte // the object's bytes [start, start+len(block))
	start   int64
	fetched int64
	fetches int64
}

// NewReadahead returns the cache over the object name of size bytes in b,
// reading readahead bytes ahead (fsspec's blocksize; DefaultReadahead is
// fsspec's default, 0 fetches exactly what each read misses).
func NewReadahead(b *blob.Bucket, name string, size, readahead int64) *Readahead {
	return &Readahead{bucket: b, name: name, size: size, readahead: max(0, readahead)}
}

// ReadAt reads len(p) bytes of the object at off into p, as io.ReaderAt
// does: fewer bytes only at the end of the object (with io.EOF) or with
// the error that stopped the fetch. A negative off fails with an error
// wrapping fs.ErrInvalid.
func (r *Readahead) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("baseline: read at negative offset %d: %w", off, fs.ErrInvalid)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := min(int64(len(p)), r.size-off)
	end := off + want
	blockEnd := r.start + int64(len(r.block))
	if off >= r.start && end <= blockEnd { // hit
		return r.done(copy(p, r.block[off-r.start:end-r.start]), len(p))
	}
	var kept int
	from := off
	if off >= r.start && off < blockEnd { // partial hit: keep the tail
		kept = copy(p, r.block[off-r.start:])
		from = blockEnd
	}
	if err := r.fetch(ctx, from, min(r.size, end+min(r.readahead, r.size-end))); err != nil {
		return kept, err
	}
	n := kept + copy(p[kept:want], r.block)
	return r.done(n, len(p))
}

// done returns n and io.EOF when the read was cut short by the end of the
// object.
func (r *Readahead) done(n, asked int) (int, error) {
	if n < asked {
		return n, io.EOF
	}
	return n, nil
}

// fetch replaces the block with the object's bytes [from, to).
func (r *Readahead) fetch(ctx context.Context, from, to int64) error {
	n := to - from
	if int64(cap(r.block)) < n {
		r.block = make([]byte, n)
	}
	r.block, r.start = r.block[:0], from
	rr, err := r.bucket.NewRangeReader(ctx, r.name, from, n, nil)
	if err != nil {
		return err
	}
	r.fetches++
	got, err := io.ReadFull(rr, r.block[:n])
	r.fetched += int64(got)
	if err = errors.Join(err, rr.Close()); err != nil {
		return err
	}
	r.block = r.block[:n]
	return nil
}

// Fetched is the number of object bytes the cache has read from the
// bucket.
func (r *Readahead) Fetched() int64 { return r.fetched }

// Fetches is the number of ranged reads the cache has made: fsspec's miss
// count. The benchmarks count requests at the server; the cache's rules are
// tested through it.
func (r *Readahead) Fetches() int64 { return r.fetches }
