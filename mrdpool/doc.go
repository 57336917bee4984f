// Package mrdpool keeps a pool of multi-range downloaders for one object and
// reads byte ranges of that object through them.
//
// A downloader is whatever carries ranges to the storage service: on a zonal
// (Rapid) bucket a real gRPC storage.MultiRangeDownloader, one bidi stream
// that carries many ranges at once; on any other gocloud bucket a
// range-reader slot that issues one ranged GET at a time. Both sit behind the
// small Backend/Downloader interfaces, so callers (the prefetcher, gcsfs)
// never know which they have.
//
// # PoolSize and Concurrency
//
// Two knobs, two meanings:
//
//   - PoolSize is how many downloaders (streams, connections) the pool may
//     hold open at once for the object.
//   - Concurrency is how many ranges one logical read (a prefetch window, a
//     whole-object ReadFile) is split into by the caller. It is not a pool
//     setting: the caller (the prefetch engine) splits the read and calls
//     ReadAt once per part, concurrently.
//
// With PoolSize 2 and a read split at Concurrency 4 on an MRD backend:
//
//	logical read [0 ............................................ 64 MiB)
//	   split:    [ part 0 ][ part 1 ][ part 2 ][ part 3 ]
//	                 |         |         |         |
//	   ReadAt:    open D1   open D2   share D1  share D2   (least-loaded)
//	                 v         v         v         v
//	             +--------- D1 ---------+ +-------- D2 ---------+
//	             | stream: part0, part2 | | stream: part1, part3 |
//	             +----------------------+ +---------------------+
//
// On a range-reader backend a downloader carries one range at a time, so
// parts 2 and 3 wait (context-aware) until D1 or D2 is free again.
//
// # Contracts
//
//   - Lazy: New does no I/O; the first ReadAt (or Info) opens the first
//     downloader, under the pool's lock, so two concurrent first callers
//     open exactly one.
//   - The pool grows on demand up to PoolSize; a full pool shares its least-loaded
//     busy downloader when the backend can carry many ranges per
//     downloader (once the opens in flight have come in, so a burst of
//     ranges spreads over all of them), and otherwise makes the caller
//     wait.
//   - A downloader whose Err is non-nil, or one of whose ranges stalled,
//     is closed and replaced, never handed out again; ranges still waiting
//     on it end at once and are retried elsewhere.
//   - Every wait is bounded: a range that receives no byte for
//     Options.StallTimeout, or an open that does not answer, fails with an
//     error wrapping ErrStalled; retries stop once a read has had no byte
//     for that long; RetryOptions bound the storage client's own retries.
//     The caller's context still wins when it ends sooner, and Close ends
//     every range in flight with an error wrapping fs.ErrClosed.
//   - Every range is validated against the object's size before it is
//     added: one out-of-range Add breaks a real MRD for every range in
//     flight on it.
//   - Close is idempotent, closes every downloader and returns their errors
//     joined; Info and ReadAt after Close fail with an error wrapping
//     fs.ErrClosed.
//   - The object's generation is pinned by the first open: every byte comes
//     from that generation, or the read fails with an error wrapping
//     ErrObjectChanged.
//   - ReadAtHedged (with Options.HedgeDelay) may send a second request for
//     a read whose first byte is late; the second writes into its own
//     buffer, copied to the caller's only if it answers first, and the
//     call returns only once both requests have returned: the loser never
//     writes the caller's slice afterwards.
package mrdpool
