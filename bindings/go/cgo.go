// Package statefulroute is the Go face of stateful-route: sticky, load-aware user→pod routing
// for stateful services. It wraps the library's C API (include/stateful_route.h) through cgo;
// all routing happens in the Rust core, on its one runtime.
//
// Pods run a [ServerDriver]: it publishes the pod's load and routing state and owns its
// users' persistent links. Gateways run a [ClientDriver]: ComputeLinkedPod answers "which
// pod serves this user?" from a local cache, or with one store round trip. The store is one
// Redis node ([Connect]), a Redis Cluster ([ConnectCluster]), a Sentinel-managed master
// ([ConnectSentinel]) or the embedded in-memory store ([MemoryStore]).
//
// # Linking
//
// The package links the static library libstateful_route.a. In a checkout it is the one cargo
// builds from the repository root:
//
//	cargo build --release --locked -p stateful-route-c   # target/release/libstateful_route.a
//
// A release of the module carries a prebuilt copy per GOOS_GOARCH under lib/ (made by
// `make dist`: lib/linux_amd64/libstateful_route.a and lib/include/stateful_route.h), so a
// service builds with `CGO_ENABLED=1 go build` and no Rust toolchain. The flags below search
// target/release first, then lib/<GOOS>_<GOARCH> (a service that vendors the library elsewhere
// adds its directory with CGO_LDFLAGS="-L/path"):
//
//	#cgo CFLAGS: -I${SRCDIR}/../../include -I${SRCDIR}/lib/include
//	#cgo LDFLAGS: -L${SRCDIR}/../../target/release -l:libstateful_route.a -lm -ldl -lpthread
//	#cgo linux,amd64 LDFLAGS: -L${SRCDIR}/lib/linux_amd64
//
// # Concurrency and lifetime
//
// Every type is safe for use by many goroutines. Blocking calls wait on the library's runtime
// threads, not on Go's; a cache hit of ComputeLinkedPod does not block at all. Handles are
// released when the Go value becomes unreachable (runtime.AddCleanup); Close/Stop end their
// work deterministically. No Go pointer is kept by the library: callbacks are cgo.Handles.
package statefulroute

// #cgo CFLAGS: -I${SRCDIR}/../../include -I${SRCDIR}/lib/include
// #cgo LDFLAGS: -L${SRCDIR}/../../target/release -l:libstateful_route.a -lm -ldl -lpthread
// #cgo linux,amd64 LDFLAGS: -L${SRCDIR}/lib/linux_amd64
// #include "stateful_route.h"
// static void sr_go_noop(void) {}
// int64_t sr_go_bench_compute_hits(const sr_client_driver *c, const char *uid, size_t uid_len, const char *svc, size_t svc_len, int64_t n);
// sr_status sr_go_bench_set_c_round_robin(const sr_client_driver *c, const char *svc, size_t svc_len);
// int64_t sr_go_bench_call_go_policy(uintptr_t handle, int64_t n);
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
	"unsafe"
)

// released counts the library handles freed by their cleanups and the callback handles the
// library released (srGoRelease), so that the tests can see the garbage collector free them.
var released struct {
	clients, servers, stores, callbacks atomic.Int64
}

// cstr is a Go string lent to C for one call (pointer + length, no copy, no NUL).
type cstr struct {
	p *C.char
	n C.size_t
}

// empty backs "" (unsafe.StringData may return nil for it, and NULL means "missing" to C).
var empty [1]byte

func str(s string) cstr {
	if len(s) == 0 {
		return cstr{(*C.char)(unsafe.Pointer(&empty[0])), 0}
	}
	return cstr{(*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))}
}

// cArray copies strings into one C allocation: the sr_str array followed by the bytes.
// The library borrows it for one call; free it with C.free.
func cArray(items []string) (*C.sr_str, unsafe.Pointer) {
	size := uintptr(len(items)) * unsafe.Sizeof(C.sr_str{})
	total := size + 1
	for _, s := range items {
		total += uintptr(len(s))
	}
	block := C.malloc(C.size_t(total))
	strs := unsafe.Slice((*C.sr_str)(block), len(items))
	bytes := unsafe.Slice((*byte)(unsafe.Add(block, size)), total-size)
	off := 0
	for i, s := range items {
		copy(bytes[off:], s)
		strs[i] = C.sr_str{ptr: (*C.char)(unsafe.Pointer(&bytes[off])), len: C.size_t(len(s))}
		off += len(s)
	}
	return (*C.sr_str)(block), block
}

// call runs one fallible C function and converts its status and error object.
func call(f func(**C.sr_error) uint32) error {
	var e *C.sr_error
	return takeError(f(&e), e)
}

func checkCtx(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

func goString(p *C.char) (string, bool) {
	if p == nil {
		return "", false
	}
	s := C.GoString(p)
	C.sr_string_free(p)
	return s, true
}

func podList(l *C.sr_pod_list) []int {
	out := make([]int, int(l.len))
	if l.len > 0 {
		for i, p := range unsafe.Slice(l.pods, int(l.len)) {
			out[i] = int(p)
		}
	}
	C.sr_pod_list_free(l)
	return out
}

func serviceLinks(l *C.sr_service_links) map[string]int {
	out := make(map[string]int, int(l.len))
	if l.len > 0 {
		for _, e := range unsafe.Slice(l.links, int(l.len)) {
			out[C.GoString(e.service)] = int(e.pod_index)
		}
	}
	C.sr_service_links_free(l)
	return out
}

// byPod groups the uids of a batch read by pod, in input order; uids without a link are left
// out (the C API gives one pod or -1 per uid).
func byPod(uids []string, pods []int) map[int][]string {
	out := make(map[int][]string)
	for i, p := range pods {
		if p >= 0 {
			out[p] = append(out[p], uids[i])
		}
	}
	return out
}

// cgoNoop is a bare cgo call to a C function that does nothing: the benchmarks' baseline.
func cgoNoop() { C.sr_go_noop() }

// computeHitsInC runs n cache-hit computes in a C loop (no cgo per call) and returns their
// total time, or -1 on an error: the C ABI's own hit cost, for the benchmarks.
func computeHitsInC(c *ClientDriver, uid, serviceName string, n int) int64 {
	u, svc := str(uid), str(serviceName)
	ns := C.sr_go_bench_compute_hits(c.ptr, u.p, u.n, svc.p, svc.n, C.int64_t(n))
	runtime.KeepAlive(c)
	return int64(ns)
}

// setCRoundRobin places new users of serviceName with round robin written as a C callback
// (bench.c), for the benchmarks' callback cost without Go.
func setCRoundRobin(c *ClientDriver, serviceName string) bool {
	svc := str(serviceName)
	ok := C.sr_go_bench_set_c_round_robin(c.ptr, svc.p, svc.n) == C.SR_OK
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
