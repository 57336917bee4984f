package gcsfs

import (
	"context"
	"fmt"
	"io/fs"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/zonalread/zonalread/internal/byterange"
)

// Range is Length bytes of an object starting at Offset.
type Range struct {
	Offset, Length int64
}

// maxSpansInFlight bounds the fetches one ReadRanges has started at once;
// the downloader pool bounds them further (PoolSize GETs on HTTP; many
// ranges per stream on zonal buckets).
const maxSpansInFlight = 256

// span is a run of ranges fetched together: [off, end) of the object.
type span struct {
	off, end int64
	buf      []byte
}

// ReadRanges reads many ranges of the file at once and returns their bytes,
// result i holding exactly rs[i].Length bytes at rs[i].Offset, in the order
// of rs. Ranges may come in any order and may overlap (results of
// overlapping ranges share memory). Neighbours closer than
// Options.CoalesceGap are fetched as one range (the gap's bytes are fetched
// and dropped); each fetch is split into Concurrency parts, and all of them
// are issued together: on a zonal bucket as ranges on the file's
// multi-range downloader streams, elsewhere as parallel ranged GETs (at
// most PoolSize at a time). It neither uses nor disturbs the prefetch
// window, and does not move the offset.
//
// Every range is checked before anything is fetched: a negative offset or
// length, or a range that ends past the end of the object, fails the call
// with an error wrapping fs.ErrInvalid that names the range. It returns
// all results and nil, or nil and an error: ctx's, one wrapping
// fs.ErrClosed after Close, ErrStalled, ErrObjectChanged, or the fetch's.
func (fl *File) ReadRanges(ctx context.Context, rs []Range) ([][]byte, error) {
	if err := fl.checkRanges(ctx, rs); err != nil {
		return nil, err
	}
	spans, of := coalesce(rs, fl.fsys.opts.CoalesceGap)
	if err := fl.fetchSpans(ctx, spans); err != nil {
		return nil, err
	}
	out := make([][]byte, len(rs))
	for i, r := range rs {
		if r.Length == 0 {
			out[i] = []byte{}
			continue
		}
		sp := spans[of[i]]
		at := r.Offset - sp.off
		out[i] = sp.buf[at : at+r.Length : at+r.Length]
	}
	return out, nil
}

// ReadRangesInto is ReadRanges into the caller's buffers: it fills dst[i]
// with the rs[i].Length bytes at rs[i].Offset, for a caller that reuses its
// buffers (fresh memory costs a page fault per page on its first write,
// which on a small VM runs slower than the link). Each range is fetched as
// given, straight into its buffer, split into Concurrency parts, all
// issued together as ReadRanges issues its ranges; ranges are not
// coalesced (merge neighbours first), and overlapping ones are fetched
// twice. dst must hold one buffer per range, of exactly its length.
//
// The ranges and buffers are checked before anything is fetched: a range
// ReadRanges would refuse, or a dst of another count or a buffer of
// another length, fails the call with an error wrapping fs.ErrInvalid. It
// returns nil once every buffer is filled, or an error as ReadRanges does;
// after an error the buffers hold unspecified bytes.
func (fl *File) ReadRangesInto(ctx context.Context, rs []Range, dst [][]byte) error {
	if len(dst) != len(rs) {
		return pathErr("read", fl.name, fmt.Errorf("%d buffers for %d ranges: %w", len(dst), len(rs), fs.ErrInvalid))
	}
	for i, r := range rs {
		if int64(len(dst[i])) != r.Length {
			return pathErr("read", fl.name, fmt.Errorf("buffer %d holds %d bytes for a %d-byte range: %w", i, len(dst[i]), r.Length, fs.ErrInvalid))
		}
	}
	if err := fl.checkRanges(ctx, rs); err != nil {
		return err
	}
	spans := make([]span, 0, len(rs))
	for i, r := range rs {
		if r.Length > 0 {
			spans = append(spans, span{off: r.Offset, end: r.Offset + r.Length, buf: dst[i]})
		}
	}
	return fl.fetchSpans(ctx, spans)
}

// checkRanges fails unless the file is open, ctx live, and every range
// inside the object.
func (fl *File) checkRanges(ctx context.Context, rs []Range) error {
	if err := fl.checkOpen(ctx, "read"); err != nil {
		return err
	}
	for i, r := range rs {
		if r.Offset < 0 || r.Length < 0 || !byterange.Within(r.Offset, r.Length, fl.info.Size) {
			return pathErr("read", fl.name, fmt.Errorf("range %d (%d bytes at offset %d) is not inside the %d-byte object: %w", i, r.Length, r.Offset, fl.info.Size, fs.ErrInvalid))
		}
	}
	return nil
}

// fetchSpans fills every span's buffer with its bytes, all at once (at
// most maxSpansInFlight spans started together), each split into
// Concurrency parts by the engine.
func (fl *File) fetchSpans(ctx context.Context, spans []span) error {
	ctx, done := fl.opContext(ctx)
	defer done()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxSpansInFlight)
	for _, sp := range spans {
		g.Go(func() error { return fl.engine.ReadDirect(gctx, sp.buf, sp.off) })
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil && fl.ctx.Err() == nil {
			err = ctx.Err()
		}
		return fl.wrap("read", err)
	}
	return nil
}

// coalesce merges the non-empty ranges, sorted by offset, into spans:
// ranges that overlap or lie within gap bytes of each other share one. It
// returns the spans, with their buffers, and the span of each range
// (unset for empty ones). Every range lies inside the object, so no end
// overflows.
func coalesce(rs []Range, gap int64) ([]span, []int) {
	order := make([]int, 0, len(rs))
	for i, r := range rs {
		if r.Length > 0 {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case rs[a].Offset < rs[b].Offset:
			return -1
		case rs[a].Offset > rs[b].Offset:
			return 1
		}
		return 0
	})
	of := make([]int, len(rs))
	var spans []span
	for _, i := range order {
		r := rs[i]
		end := r.Offset + r.Length
		if k := len(spans) - 1; k >= 0 && r.Offset-spans[k].end <= gap {
			spans[k].end = max(spans[k].end, end)
		} else {
			spans = append(spans, span{off: r.Offset, end: end})
		}
		of[i] = len(spans) - 1
	}
	for k := range spans {
		spans[k].buf = make([]byte, spans[k].end-spans[k].off)
	}
	return spans, of
}
