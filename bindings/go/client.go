package statefulroute

// #cgo noescape sr_client_compute_linked_pod_uncached
// #cgo noescape sr_client_get_linked_in_cache
// #include <stdlib.h>
// #include "stateful_route.h"
// sr_status sr_go_on_routing_state_changed(const sr_client_driver *c, uintptr_t handle, uint64_t *id, sr_error **err);
// sr_status sr_go_on_link_changed(const sr_client_driver *c, uintptr_t handle, uint64_t *id, sr_error **err);
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"strings"
	"time"
)

// ClientDriver is the gateway side: which pod serves a user (SPEC §6). Safe for use by many
// goroutines.
type ClientDriver struct {
	ptr   *C.sr_client_driver
	front *front
}

// NewClientDriver makes a client driver in info.Namespace (its ServiceName and PodIndex do not
// matter) over store. config nil means DefaultBaseConfig(). Call Init before use.
func NewClientDriver(store *Store, info ServerInfo, config *BaseConfig) (*ClientDriver, error) {
	if store.closed.Load() {
		return nil, closedError("store")
	}
	cfg, release, err := config.toC()
	if err != nil {
		return nil, err
	}
	defer release()
	ci, block := info.toC()
	defer C.free(block)
	var ptr *C.sr_client_driver
	err = call(func(e **C.sr_error) uint32 { return C.sr_client_new(store.ptr, &ci, &cfg, &ptr, e) })
	runtime.KeepAlive(store)
	if err != nil {
		return nil, err
	}
	c := &ClientDriver{ptr: ptr, front: newFront(ptr, info.Namespace, config)}
	runtime.AddCleanup(c, func(p *C.sr_client_driver) {
		C.sr_client_free(p)
		released.clients.Add(1)
	}, ptr)
	return c, nil
}

// Init starts the periodic snapshot refresh. Idempotent; ErrClosed after Close.
func (c *ClientDriver) Init() error {
	return c.run(nil, func(e **C.sr_error) uint32 { return C.sr_client_init(c.ptr, e) })
}

// Close stops the refresh and empties the cache; later calls fail with ErrClosed.
// Idempotent. The memory is released when c becomes unreachable.
func (c *ClientDriver) Close() error {
	c.front.flush(c.ptr)
	return c.run(nil, func(e **C.sr_error) uint32 { return C.sr_client_close(c.ptr, e) })
}

// ComputeLinkedPod returns the pod that serves uid for service, placing a new user on the
// best pod. namespace is "" or the driver's namespace. A repeated hit is answered in Go by a
// front cache the core validates (README, "Front caches"); another hit costs one non-blocking
// cgo call; a miss costs one store round trip, shared by concurrent callers for the same user,
// bounded by the store's command timeout (ctx is checked before the call), and waits as a
// parked goroutine, not in a cgo call (a completion queue the netpoller watches).
func (c *ClientDriver) ComputeLinkedPod(ctx context.Context, namespace, uid, service string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return -1, err
	}
	if pod, ok := c.front.get(namespace, uid, service); ok {
		return pod, nil
	}
	start := time.Now()
	var h C.sr_front_hit
	var e *C.sr_error
	st := C.sr_client_compute_front(c.ptr, str(namespace), str(uid), str(service), &h, &e)
	runtime.KeepAlive(c)
	if err := takeError(st, e); err != nil {
		return -1, err
	}
	if h.pod >= 0 {
		c.front.keep(strings.Clone(uid), strings.Clone(service), &h, start)
		return int(h.pod), nil
	}
	return c.computeSubmitted(namespace, uid, service)
}

// podOrError is a pod out-parameter and its call's status.
func podOrError(pod C.int64_t, st uint32, e *C.sr_error) (int, error) {
	return podOr(pod, takeError(st, e))
}

// podOr is a pod out-parameter, or -1 with the call's error.
func podOr(pod C.int64_t, err error) (int, error) {
	if err != nil {
		return -1, err
	}
	return int(pod), nil
}

// run checks ctx, then makes one C call on c.
func (c *ClientDriver) run(ctx context.Context, f func(**C.sr_error) uint32) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := call(f)
	runtime.KeepAlive(c)
	return err
}

// ComputeCached is ComputeLinkedPod's non-blocking half: the cached pod of uid if it is alive,
// else -1 (then call ComputeLinkedPodUncached).
func (c *ClientDriver) ComputeCached(ctx context.Context, namespace, uid, service string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return -1, err
	}
	var pod C.int64_t
	var e *C.sr_error
	st := C.sr_client_compute_cached(c.ptr, str(namespace), str(uid), str(service), &pod, &e)
	runtime.KeepAlive(c)
	return podOrError(pod, st, e)
}

// ComputeLinkedPodUncached is ComputeLinkedPod's store half, after a cache miss.
func (c *ClientDriver) ComputeLinkedPodUncached(ctx context.Context, namespace, uid, service string) (int, error) {
	var pod C.int64_t
	err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_compute_linked_pod_uncached(c.ptr, str(namespace), str(uid), str(service), &pod, e)
	})
	return podOr(pod, err)
}

// GetLinkedPod returns the user's pod from the cache, else from the store (then cached);
// -1 if the user has no link.
func (c *ClientDriver) GetLinkedPod(ctx context.Context, namespace, uid, service string) (int, error) {
	var pod C.int64_t
	err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_get_linked_pod(c.ptr, str(namespace), str(uid), str(service), &pod, e)
	})
	return podOr(pod, err)
}

// GetLinkedPodInCacheOrIfPersist returns the cached pod, else a persistent link's pod from the
// store; -1 if neither.
func (c *ClientDriver) GetLinkedPodInCacheOrIfPersist(ctx context.Context, namespace, uid, service string) (int, error) {
	var pod C.int64_t
	err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_get_linked_pod_in_cache_or_if_persist(c.ptr, str(namespace), str(uid), str(service), &pod, e)
	})
	return podOr(pod, err)
}

// GetLinkedPodNotCache reads the link from the store, bypassing (and not filling) the cache;
// -1 if none.
func (c *ClientDriver) GetLinkedPodNotCache(ctx context.Context, namespace, uid, service string) (int, error) {
	var pod C.int64_t
	err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_get_linked_pod_not_cache(c.ptr, str(namespace), str(uid), str(service), &pod, e)
	})
	return podOr(pod, err)
}

// GetLinkedInCache returns the cached pod only; -1 if none. Does not block.
func (c *ClientDriver) GetLinkedInCache(ctx context.Context, namespace, uid, service string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return -1, err
	}
	var pod C.int64_t
	var e *C.sr_error
	st := C.sr_client_get_linked_in_cache(c.ptr, str(namespace), str(uid), str(service), &pod, &e)
	runtime.KeepAlive(c)
	return podOrError(pod, st, e)
}

// CacheExpired drops the cached link and returns what it held, or -1.
func (c *ClientDriver) CacheExpired(ctx context.Context, namespace, uid, service string) (int, error) {
	var pod C.int64_t
	err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_cache_expired(c.ptr, str(namespace), str(uid), str(service), &pod, e)
	})
	return podOr(pod, err)
}

// SetCache caches pod for uid (for UserLinkInfoCacheTimeSeconds).
func (c *ClientDriver) SetCache(ctx context.Context, namespace, uid, service string, pod int) error {
	return c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_set_cache(c.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), e)
	})
}

// SetLinkedPodIfAbsent links uid to pod unless a link exists and returns the link in force
// (ttl in seconds: -1 persistent, > 0 temporary).
func (c *ClientDriver) SetLinkedPodIfAbsent(ctx context.Context, namespace, uid, service string, pod, ttl int) (Link, error) {
	var l C.sr_link
	if err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_set_linked_pod_if_absent(c.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), C.int64_t(ttl), &l, e)
	}); err != nil {
		return Link{PodIndex: -1}, err
	}
	link, _ := linkFromC(l)
	return link, nil
}

// GetLinkService returns the user's persistent links, service → pod.
func (c *ClientDriver) GetLinkService(ctx context.Context, namespace, uid string) (map[string]int, error) {
	var l C.sr_service_links
	if err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_get_link_service(c.ptr, str(namespace), str(uid), &l, e)
	}); err != nil {
		return nil, err
	}
	return serviceLinks(&l), nil
}

// BatchGetLinkedPod returns pod → uids (in input order) for the uids that have a link.
func (c *ClientDriver) BatchGetLinkedPod(ctx context.Context, namespace string, uids []string, service string) (map[int][]string, error) {
	arr, block := cArray(uids...)
	defer C.free(block)
	var g C.sr_pod_groups
	if err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_batch_get_linked_pod(c.ptr, str(namespace), arr, C.size_t(len(uids)), str(service), &g, e)
	}); err != nil {
		return nil, err
	}
	return podGroups(&g), nil
}

// CacheLen is the number of links in the local cache (approximate).
func (c *ClientDriver) CacheLen() int {
	var n C.uint64_t
	C.sr_client_cache_len(c.ptr, &n, nil)
	runtime.KeepAlive(c)
	return int(n)
}

// OnRoutingStateChanged calls callback for each routing-state change a refresh of this driver
// sees. It runs on the library's threads (or inside RefreshService); it must return quickly
// and must not call blocking methods of this package. Returns an id for
// RemoveRoutingStateListener.
func (c *ClientDriver) OnRoutingStateChanged(callback func(RoutingStateChange)) (uint64, error) {
	h := cgo.NewHandle(callback)
	var id C.uint64_t
	err := call(func(e **C.sr_error) uint32 {
		return uint32(C.sr_go_on_routing_state_changed(c.ptr, C.uintptr_t(h), &id, e))
	})
	runtime.KeepAlive(c)
	if err != nil {
		h.Delete() // the library did not take it
		return 0, err
	}
	return uint64(id), nil
}

// RemoveRoutingStateListener removes a listener; it reports whether id was registered.
func (c *ClientDriver) RemoveRoutingStateListener(id uint64) (bool, error) {
	var removed C.bool
	err := c.run(nil, func(e **C.sr_error) uint32 {
		return C.sr_client_remove_routing_state_listener(c.ptr, C.uint64_t(id), &removed, e)
	})
	return bool(removed), err
}

// OnLinkChanged calls callback for each change of a link of this driver's namespace made by
// any writer sharing the store (SPEC §11): a move, a removal (Pod -1), a replacement; the
// driver has already dropped its cache entry for that (uid, service), e.g. to close the
// user's connection when the user moves. On Redis it runs on the library's threads; on the
// memory store synchronously inside the writing call (SetLinkedPod, RemoveLinkedPod, ...), on
// that goroutine, before the call returns. Either way it must return quickly and must not
// call blocking methods of this package (they fail with ErrInvalidArgument there); non-blocking
// ones such as GetLinkedInCache are fine. Only changes that reach the driver while its event
// stream is connected are reported (after a gap the cache is emptied instead); on a store with
// DisablePropagation none are. Returns an id for RemoveLinkListener.
func (c *ClientDriver) OnLinkChanged(callback func(LinkChange)) (uint64, error) {
	h := cgo.NewHandle(callback)
	var id C.uint64_t
	err := call(func(e **C.sr_error) uint32 {
		return uint32(C.sr_go_on_link_changed(c.ptr, C.uintptr_t(h), &id, e))
	})
	runtime.KeepAlive(c)
	if err != nil {
		h.Delete() // the library did not take it
		return 0, err
	}
	return uint64(id), nil
}

// RemoveLinkListener removes a link listener; it reports whether id was registered. A call of
// it already running may still finish.
func (c *ClientDriver) RemoveLinkListener(id uint64) (bool, error) {
	var removed C.bool
	err := c.run(nil, func(e **C.sr_error) uint32 {
		return C.sr_client_remove_link_listener(c.ptr, C.uint64_t(id), &removed, e)
	})
	return bool(removed), err
}
