// Package integration holds end-to-end tests of zonalread against the
// in-process shaped fake servers (internal/testserver): faults injected over
// HTTP and gRPC, bad input, many concurrent readers, and a soak test. Every
// read is checked against the source bytes. `go test -short` skips the
// slower tests; the soak test runs only with ZONALREAD_SOAK set (make soak).
package integration
