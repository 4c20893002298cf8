package statefulroute

// #cgo noescape sr_client_compute_front
// #include "stateful_route.h"
import "C"

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// frontCapacity is the most entries a driver's front cache holds (fewer if its CacheCapacity
// is smaller).
const frontCapacity = 65536

type frontKey struct{ service, uid string }

// frontEntry is an answer of the core's cache as sr_client_compute_front gave it: valid until
// expires while the core's epoch for its stripe is still epoch.
type frontEntry struct {
	expires time.Time
	hits    *atomic.Uint64
	pod     int32
	stripe  uint32
	epoch   uint32
}

// front is a driver's front cache (README, "Front caches"): a repeated hit is answered here,
// in Go, without a cgo call; the core decides what may be kept and for how long, and bumps the
// epochs (memory it shares with us) on every change that can make a kept answer wrong.
type front struct {
	epochs []uint32 // the core's, read with atomic loads
	ns     string
	cap    int

	mu    sync.RWMutex
	links map[frontKey]frontEntry
	hits  map[string]*atomic.Uint64 // front hits per service not yet added to the metrics
}

func newFront(c *C.sr_client_driver, namespace string, config *BaseConfig) *front {
	f := &front{ns: namespace, links: map[frontKey]frontEntry{}, hits: map[string]*atomic.Uint64{}}
	var words *C.uint32_t
	var e *C.sr_error
	if C.sr_client_front_epochs(c, &words, &e) != 0 {
		C.sr_error_free(e)
		return f // cap 0: no front cache
	}
	f.epochs = unsafe.Slice((*uint32)(unsafe.Pointer(words)), C.SR_FRONT_STRIPES)
	f.cap = frontCapacity
	if config != nil && config.CacheCapacity < 0 {
		f.cap = 0
	} else if config != nil && config.CacheCapacity > 0 && config.CacheCapacity < frontCapacity {
		f.cap = int(config.CacheCapacity)
	}
	return f
}

// get answers a hit the front cache still holds.
func (f *front) get(namespace, uid, service string) (int, bool) {
	if f == nil { // a zero ClientDriver: the C call names the error
		return -1, false
	}
	f.mu.RLock()
	e, ok := f.links[frontKey{service, uid}]
	f.mu.RUnlock()
	if !ok || atomic.LoadUint32(&f.epochs[e.stripe]) != e.epoch || !time.Now().Before(e.expires) ||
		(namespace != "" && namespace != f.ns) {
		return -1, false
	}
	e.hits.Add(1)
	return int(e.pod), true
}

// keep holds the core's hit h (taken at start) for uid, service.
func (f *front) keep(uid, service string, h *C.sr_front_hit, start time.Time) {
	if f == nil || f.cap == 0 || h.valid_ns == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := frontKey{service, uid}
	if _, held := f.links[key]; !held && len(f.links) >= f.cap {
		f.links = map[frontKey]frontEntry{} // full: start over (the core's cache holds them all)
	}
	hits := f.hits[service]
	if hits == nil {
		hits = new(atomic.Uint64)
		f.hits[service] = hits
	}
	f.links[key] = frontEntry{
		expires: start.Add(time.Duration(h.valid_ns)),
		hits:    hits,
		pod:     int32(h.pod),
		stripe:  uint32(h.stripe),
		epoch:   uint32(h.epoch),
	}
}

// flush adds the front hits to the core's metrics.
func (f *front) flush(c *C.sr_client_driver) {
	if f == nil {
		return
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	for service, hits := range f.hits {
		if n := hits.Swap(0); n > 0 {
			var e *C.sr_error
			if C.sr_client_add_front_hits(c, str(service), C.uint64_t(n), &e) != 0 {
				C.sr_error_free(e)
			}
		}
	}
}

// size is the number of entries held (for tests).
func (f *front) size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.links)
}
