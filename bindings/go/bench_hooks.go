//go:build srbench

package statefulroute

// Benchmark hooks (bench.c), built only with -tags srbench (bench.sh and test.sh pass it):
// they are not part of the package a service links.

// #include "stateful_route.h"
// static void sr_go_noop(void) {}
// int64_t sr_go_bench_compute_hits(const sr_client_driver *c, sr_str uid, sr_str svc, int64_t n);
// sr_status sr_go_bench_set_c_round_robin(const sr_client_driver *c, sr_str svc);
// int64_t sr_go_bench_call_go_policy(uintptr_t handle, int64_t n);
import "C"

import (
	"runtime"
	"runtime/cgo"
)

// cgoNoop is a bare cgo call to a C function that does nothing: the benchmarks' baseline.
func cgoNoop() { C.sr_go_noop() }

// computeHitsInC runs n cache-hit computes in a C loop (no cgo per call) and returns their
// total time, or -1 on an error: the C ABI's own hit cost, for the benchmarks.
func computeHitsInC(c *ClientDriver, uid, service string, n int) int64 {
	ns := C.sr_go_bench_compute_hits(c.ptr, str(uid), str(service), C.int64_t(n))
	runtime.KeepAlive(c)
	return int64(ns)
}

// setCRoundRobin places new users of service with round robin written as a C callback
// (bench.c), for the benchmarks' callback cost without Go.
func setCRoundRobin(c *ClientDriver, service string) bool {
	ok := C.sr_go_bench_set_c_round_robin(c.ptr, str(service)) == C.SR_OK
	runtime.KeepAlive(c)
	return ok
}

// callGoPolicyFromC calls p n times from a C loop the way the library calls a policy and
// returns the total time, or -1 on an error.
func callGoPolicyFromC(p PlacementPolicy, n int) int64 {
	h := cgo.NewHandle(p)
	defer h.Delete()
	return int64(C.sr_go_bench_call_go_policy(C.uintptr_t(h), C.int64_t(n)))
}
