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
// # Operations
//
// [ClientDriver.Metrics] and [ClientDriver.MetricsText] report what a gateway counted and sees
// (README "Metrics"); the promcollector subpackage, a module of its own so that this one
// depends on nothing, serves them to Prometheus. [ClientDriver.ExplainPlacement] tells why a
// user lands on a pod. In Kubernetes, [ServerInfoFromEnv] says who the pod is and
// [StopOnSignal] drains and stops it on SIGTERM.
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
import "C"

import (
	"context"
	"sync/atomic"
	"unsafe"
)

// released counts the library handles freed by their cleanups and the callback handles the
// library released (srGoRelease), so that the tests can see the garbage collector free them.
var released struct {
	clients, servers, stores, callbacks atomic.Int64
}

// str lends a Go string to C for one call, by value (pointer + length, no copy, no NUL);
// "" may be {NULL, 0}, which the library reads as "". Only as a call's argument: a struct C
// reads through a pointer must not hold Go pointers (see cStrings).
func str(s string) C.sr_str {
	return C.sr_str{ptr: (*C.char)(unsafe.Pointer(unsafe.StringData(s))), len: C.size_t(len(s))}
}

// cArray copies strings into one C allocation: the sr_str array followed by the bytes (for
// arrays and for the strings of structs C reads through a pointer). The library borrows it for
// one call; free it with C.free.
func cArray(items ...string) (*C.sr_str, unsafe.Pointer) {
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

// goStrings copies a library list of strings (NULL entries read as "").
func goStrings(p **C.char, n C.size_t) []string {
	out := make([]string, int(n))
	if n > 0 {
		for i, s := range unsafe.Slice(p, int(n)) {
			if s != nil {
				out[i] = C.GoString(s)
			}
		}
	}
	return out
}

// podGroups is a batch read's answer as the library groups it, pod → uids in input order.
func podGroups(l *C.sr_pod_groups) map[int][]string {
	out := make(map[int][]string, int(l.len))
	if l.len > 0 {
		for _, g := range unsafe.Slice(l.groups, int(l.len)) {
			out[int(g.pod_index)] = goStrings(g.uids.strings, g.uids.len)
		}
	}
	C.sr_pod_groups_free(l)
	return out
}
