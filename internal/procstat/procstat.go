// Package procstat reads the process's own resource use, for benchmarks
// that report it beside their times: CPU time (on a small machine that
// runs the fake servers in-process, a run can be bound by the CPU rather
// than the link it shapes) and peak resident memory. Where the platform
// does not say, both are 0.
package procstat
