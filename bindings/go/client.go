package statefulroute

// #cgo noescape sr_client_compute_linked_pod
// #cgo noescape sr_client_get_linked_in_cache
// #include <stdlib.h>
// #include "stateful_route.h"
// sr_status sr_go_on_routing_state_changed(const sr_client_driver *c, uintptr_t handle, uint64_t *id, sr_error **err);
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
)

// ClientDriver is the gateway side: which pod serves a user (SPEC §6). Safe for use by many
// goroutines.
type ClientDriver struct {
	ptr *C.sr_client_driver
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
	c := &ClientDriver{ptr: ptr}
	runtime.AddCleanup(c, func(p *C.sr_client_driver) {
		C.sr_client_free(p)
		released.clients.Add(1)
	}, ptr)
	return c, nil
}

// Init starts the periodic snapshot refresh. Idempotent; ErrClosed after Close.
func (c *ClientDriver) Init() error {
	err := call(func(e **C.sr_error) uint32 { return C.sr_client_init(c.ptr, e) })
	runtime.KeepAlive(c)
	return err
}

// Close stops the refresh and empties the cache; later calls fail with ErrClosed.
// Idempotent. The memory is released when c becomes unreachable.
func (c *ClientDriver) Close() error {
	err := call(func(e **C.sr_error) uint32 { return C.sr_client_close(c.ptr, e) })
	runtime.KeepAlive(c)
	return err
}

// ComputeLinkedPod returns the pod that serves uid for serviceName, placing a new user on the
// best pod. namespace is "" or the driver's namespace. A cache hit does not block; a miss
// costs one store round trip, shared by concurrent callers for the same user, bounded by the
// store's command timeout (ctx is checked before the call).
func (c *ClientDriver) ComputeLinkedPod(ctx context.Context, namespace, uid, serviceName string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return -1, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var pod C.int64_t
	var e *C.sr_error
	st := C.sr_client_compute_linked_pod(c.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, &pod, &e)
	runtime.KeepAlive(c)
	if st != C.SR_OK {
		return -1, takeError(st, e)
	}
	return int(pod), nil
}

type lookupFn func(*C.sr_client_driver, *C.char, C.size_t, *C.char, C.size_t, *C.char, C.size_t, *C.int64_t, **C.sr_error) uint32

func (c *ClientDriver) lookup(ctx context.Context, f lookupFn, namespace, uid, serviceName string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return -1, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var pod C.int64_t
	err := call(func(e **C.sr_error) uint32 { return f(c.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, &pod, e) })
	runtime.KeepAlive(c)
	if err != nil {
		return -1, err
	}
	return int(pod), nil
}

// GetLinkedPod returns the user's pod from the cache, else from the store (then cached);
// -1 if the user has no link.
func (c *ClientDriver) GetLinkedPod(ctx context.Context, namespace, uid, serviceName string) (int, error) {
	return c.lookup(ctx, func(p *C.sr_client_driver, a *C.char, an C.size_t, b *C.char, bn C.size_t, d *C.char, dn C.size_t, o *C.int64_t, e **C.sr_error) uint32 {
		return C.sr_client_get_linked_pod(p, a, an, b, bn, d, dn, o, e)
	}, namespace, uid, serviceName)
}

// GetLinkedPodInCacheOrIfPersist returns the cached pod, else a persistent link's pod from the
// store; -1 if neither.
func (c *ClientDriver) GetLinkedPodInCacheOrIfPersist(ctx context.Context, namespace, uid, serviceName string) (int, error) {
	return c.lookup(ctx, func(p *C.sr_client_driver, a *C.char, an C.size_t, b *C.char, bn C.size_t, d *C.char, dn C.size_t, o *C.int64_t, e **C.sr_error) uint32 {
		return C.sr_client_get_linked_pod_in_cache_or_if_persist(p, a, an, b, bn, d, dn, o, e)
	}, namespace, uid, serviceName)
}

// GetLinkedPodNotCache reads the link from the store, bypassing (and not filling) the cache;
// -1 if none.
func (c *ClientDriver) GetLinkedPodNotCache(ctx context.Context, namespace, uid, serviceName string) (int, error) {
	return c.lookup(ctx, func(p *C.sr_client_driver, a *C.char, an C.size_t, b *C.char, bn C.size_t, d *C.char, dn C.size_t, o *C.int64_t, e **C.sr_error) uint32 {
		return C.sr_client_get_linked_pod_not_cache(p, a, an, b, bn, d, dn, o, e)
	}, namespace, uid, serviceName)
}

// GetLinkedInCache returns the cached pod only; -1 if none. Does not block.
func (c *ClientDriver) GetLinkedInCache(ctx context.Context, namespace, uid, serviceName string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return -1, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var pod C.int64_t
	var e *C.sr_error
	st := C.sr_client_get_linked_in_cache(c.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, &pod, &e)
	runtime.KeepAlive(c)
	if st != C.SR_OK {
		return -1, takeError(st, e)
	}
	return int(pod), nil
}

// CacheExpired drops the cached link and returns what it held, or -1.
func (c *ClientDriver) CacheExpired(ctx context.Context, namespace, uid, serviceName string) (int, error) {
	return c.lookup(ctx, func(p *C.sr_client_driver, a *C.char, an C.size_t, b *C.char, bn C.size_t, d *C.char, dn C.size_t, o *C.int64_t, e **C.sr_error) uint32 {
		return C.sr_client_cache_expired(p, a, an, b, bn, d, dn, o, e)
	}, namespace, uid, serviceName)
}

// SetCache caches pod for uid (for UserLinkInfoCacheTimeSeconds).
func (c *ClientDriver) SetCache(ctx context.Context, namespace, uid, serviceName string, pod int) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_set_cache(c.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, C.int64_t(pod), e)
	})
	runtime.KeepAlive(c)
	return err
}

// SetLinkedPodIfAbsent links uid to pod unless a link exists and returns the link in force
// (ttlSeconds: -1 persistent, > 0 seconds).
func (c *ClientDriver) SetLinkedPodIfAbsent(ctx context.Context, namespace, uid, serviceName string, pod, ttlSeconds int) (Link, error) {
	if err := checkCtx(ctx); err != nil {
		return Link{PodIndex: -1}, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var l C.sr_link
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_set_linked_pod_if_absent(c.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, C.int64_t(pod), C.int64_t(ttlSeconds), &l, e)
	})
	runtime.KeepAlive(c)
	if err != nil {
		return Link{PodIndex: -1}, err
	}
	link, _ := linkFromC(l)
	return link, nil
}

// GetLinkService returns the user's persistent links, service → pod.
func (c *ClientDriver) GetLinkService(ctx context.Context, namespace, uid string) (map[string]int, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	ns, u := str(namespace), str(uid)
	var l C.sr_service_links
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_get_link_service(c.ptr, ns.p, ns.n, u.p, u.n, &l, e)
	})
	runtime.KeepAlive(c)
	if err != nil {
		return nil, err
	}
	return serviceLinks(&l), nil
}

// BatchGetLinkedPod returns pod → uids (in input order) for the uids that have a link.
func (c *ClientDriver) BatchGetLinkedPod(ctx context.Context, namespace string, uids []string, serviceName string) (map[int][]string, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	ns, svc := str(namespace), str(serviceName)
	arr, block := cArray(uids)
	defer C.free(block)
	var l C.sr_pod_list
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_batch_get_linked_pod(c.ptr, ns.p, ns.n, arr, C.size_t(len(uids)), svc.p, svc.n, &l, e)
	})
	runtime.KeepAlive(c)
	if err != nil {
		return nil, err
	}
	return byPod(uids, podList(&l)), nil
}

// CacheLen is the number of links in the local cache (approximate).
func (c *ClientDriver) CacheLen() int {
	var n C.uint64_t
	C.sr_client_cache_len(c.ptr, &n, nil)
	runtime.KeepAlive(c)
	return int(n)
}

// OnRoutingStateChanged calls f for each routing-state change a refresh of this driver sees.
// f runs on the library's threads (or inside RefreshService); it must return quickly and must
// not call blocking methods of this package. Returns an id for RemoveRoutingStateListener.
func (c *ClientDriver) OnRoutingStateChanged(f func(RoutingStateChange)) (uint64, error) {
	h := cgo.NewHandle(f)
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
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_remove_routing_state_listener(c.ptr, C.uint64_t(id), &removed, e)
	})
	runtime.KeepAlive(c)
	return bool(removed), err
}
