package statefulroute

// #include <stdlib.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Store is where links and pod states live: Redis or the embedded in-memory store. Share one
// Store among any number of drivers; they keep their own reference to it.
type Store struct {
	ptr    *C.sr_store
	closed atomic.Bool
}

func newStore(ptr *C.sr_store) *Store {
	s := &Store{ptr: ptr}
	runtime.AddCleanup(s, func(p *C.sr_store) { C.sr_store_free(p) }, ptr)
	return s
}

// MemoryStore is a new embedded in-memory store (nothing is shared between two of them).
func MemoryStore() *Store {
	s, err := NewStore(context.Background(), StoreConfig{})
	if err != nil {
		panic(err) // the default configuration is valid
	}
	return s
}

// Connect connects to Redis at url with the default settings.
func Connect(ctx context.Context, url string) (*Store, error) {
	return NewStore(ctx, StoreConfig{URL: url})
}

// NewStore makes a store from config: Redis if config.URL is set, else the in-memory store.
// Connecting blocks until connected or config.ConnectTimeout passes.
func NewStore(ctx context.Context, config StoreConfig) (*Store, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var sc C.sr_store_config
	C.sr_store_config_default(&sc)
	var prefix unsafe.Pointer
	if config.KeyPrefix != "" {
		prefix = C.CBytes([]byte(config.KeyPrefix))
		defer C.free(prefix)
		sc.key_prefix = (*C.char)(prefix)
		sc.key_prefix_len = C.size_t(len(config.KeyPrefix))
	}
	if config.ConnectTimeout > 0 {
		sc.connect_timeout_ms = C.uint64_t(max(config.ConnectTimeout.Milliseconds(), 1))
	}
	if config.CommandTimeout > 0 {
		sc.command_timeout_ms = C.uint64_t(max(config.CommandTimeout.Milliseconds(), 1))
	}
	var ptr *C.sr_store
	err := call(func(e **C.sr_error) uint32 {
		if config.URL == "" {
			return C.sr_store_memory(&sc, &ptr, e)
		}
		u := str(config.URL)
		return C.sr_store_connect(u.p, u.n, &sc, &ptr, e)
	})
	if err != nil {
		return nil, err
	}
	return newStore(ptr), nil
}

// Close marks the store closed: its own methods then fail with ErrClosed. Drivers made from
// it keep working; the connection is released once they and the store are unreachable.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) open(ctx context.Context) error {
	if s.closed.Load() {
		return closedError("store")
	}
	return checkCtx(ctx)
}

// SetLink links uid to pod for serviceName unconditionally (ttlSeconds: -1 persistent,
// > 0 temporary) and returns the pod linked before, or -1.
func (s *Store) SetLink(ctx context.Context, namespace, uid, serviceName string, pod, ttlSeconds int) (int, error) {
	if err := s.open(ctx); err != nil {
		return -1, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var prev C.int64_t
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_set_link(s.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, C.int64_t(pod), C.int64_t(ttlSeconds), &prev, e)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return -1, err
	}
	return int(prev), nil
}

// SetLinkIfAbsent links uid to pod unless a link exists (which then wins, its TTL untouched)
// and returns the link in force.
func (s *Store) SetLinkIfAbsent(ctx context.Context, namespace, uid, serviceName string, pod, ttlSeconds int) (Link, error) {
	if err := s.open(ctx); err != nil {
		return Link{PodIndex: -1}, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var l C.sr_link
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_set_link_if_absent(s.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, C.int64_t(pod), C.int64_t(ttlSeconds), &l, e)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return Link{PodIndex: -1}, err
	}
	link, _ := linkFromC(l)
	return link, nil
}

// TrySetLink links uid to pod unless it is persistently linked to another pod.
func (s *Store) TrySetLink(ctx context.Context, namespace, uid, serviceName string, pod, ttlSeconds int) (TrySetOutcome, error) {
	if err := s.open(ctx); err != nil {
		return TrySetOutcome{Owner: -1, Previous: -1}, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var o C.sr_try_set_outcome
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_try_set_link(s.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, C.int64_t(pod), C.int64_t(ttlSeconds), &o, e)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return TrySetOutcome{Owner: -1, Previous: -1}, err
	}
	return outcomeFromC(o), nil
}

// RemoveLink removes the link now (delaySeconds <= 0) or lets it expire after delaySeconds;
// it reports whether a link existed.
func (s *Store) RemoveLink(ctx context.Context, namespace, uid, serviceName string, delaySeconds int) (bool, error) {
	if err := s.open(ctx); err != nil {
		return false, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var removed C.bool
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_remove_link(s.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, C.int64_t(delaySeconds), &removed, e)
	})
	runtime.KeepAlive(s)
	return bool(removed) && err == nil, err
}

// RemoveLinkIf is RemoveLink only if the link points to pod (compare-and-delete).
func (s *Store) RemoveLinkIf(ctx context.Context, namespace, uid, serviceName string, pod, delaySeconds int) (bool, error) {
	if err := s.open(ctx); err != nil {
		return false, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var removed C.bool
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_remove_link_if(s.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, C.int64_t(pod), C.int64_t(delaySeconds), &removed, e)
	})
	runtime.KeepAlive(s)
	return bool(removed) && err == nil, err
}

// GetLink reads a link with its remaining TTL; ok is false if there is none.
func (s *Store) GetLink(ctx context.Context, namespace, uid, serviceName string) (link Link, ok bool, err error) {
	if err := s.open(ctx); err != nil {
		return Link{PodIndex: -1}, false, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var l C.sr_link
	err = call(func(e **C.sr_error) uint32 {
		return C.sr_store_get_link(s.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, &l, e)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return Link{PodIndex: -1}, false, err
	}
	link, ok = linkFromC(l)
	return link, ok, nil
}

// GetLinkIfPersist reads a persistent link's pod; -1 if there is none or it is temporary.
func (s *Store) GetLinkIfPersist(ctx context.Context, namespace, uid, serviceName string) (int, error) {
	if err := s.open(ctx); err != nil {
		return -1, err
	}
	ns, u, svc := str(namespace), str(uid), str(serviceName)
	var pod C.int64_t
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_get_link_if_persist(s.ptr, ns.p, ns.n, u.p, u.n, svc.p, svc.n, &pod, e)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return -1, err
	}
	return int(pod), nil
}

// GetLinkServices returns the user's persistent links, service → pod.
func (s *Store) GetLinkServices(ctx context.Context, namespace, uid string) (map[string]int, error) {
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	ns, u := str(namespace), str(uid)
	var l C.sr_service_links
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_get_link_services(s.ptr, ns.p, ns.n, u.p, u.n, &l, e)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return nil, err
	}
	return serviceLinks(&l), nil
}

// BatchGetLinks reads the links of many users of one service: pod → uids in input order;
// users without a link are left out.
func (s *Store) BatchGetLinks(ctx context.Context, namespace string, uids []string, serviceName string) (map[int][]string, error) {
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	ns, svc := str(namespace), str(serviceName)
	arr, block := cArray(uids)
	defer C.free(block)
	var l C.sr_pod_list
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_store_batch_get_links(s.ptr, ns.p, ns.n, arr, C.size_t(len(uids)), svc.p, svc.n, &l, e)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return nil, err
	}
	return byPod(uids, podList(&l)), nil
}
