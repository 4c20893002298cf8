package statefulroute

// #include <stdlib.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"runtime"
	"sync/atomic"
)

// Store is where links and pod states live: Redis (one node, a cluster or a Sentinel-managed
// master) or the embedded in-memory store. Share one
// Store among any number of drivers; they keep their own reference to it.
type Store struct {
	ptr    *C.sr_store
	closed atomic.Bool
}

func newStore(ptr *C.sr_store) *Store {
	s := &Store{ptr: ptr}
	runtime.AddCleanup(s, func(p *C.sr_store) {
		C.sr_store_free(p)
		released.stores.Add(1)
	}, ptr)
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

// ConnectCluster connects to a Redis Cluster through any of its nodes (urls: seed nodes,
// redis:// or rediss:// URLs), with the settings of config if one is given (its topology
// fields must be empty). The store behaves as on one node: every script touches one slot,
// batch reads are split by slot and merged in input order, and MOVED/ASK redirections and
// failovers are followed by the client (calls during a failover fail with
// ErrStoreUnavailable or ErrTimeout).
func ConnectCluster(ctx context.Context, urls []string, config ...StoreConfig) (*Store, error) {
	c, err := oneConfig(config)
	if err != nil {
		return nil, err
	}
	if c.topology() != topoMemory {
		return nil, topologyError("ConnectCluster's config must not set URL, ClusterURLs or SentinelURLs")
	}
	c.ClusterURLs = urls
	return connect(ctx, c, topoCluster)
}

// ConnectSentinel connects to the master that the Redis Sentinels at sentinelURLs
// (redis://host:port) monitor as masterName, with the settings of config if one is given (its
// topology fields must be empty). When the sentinels fail over, the store follows the new
// master; calls meanwhile fail with ErrStoreUnavailable, ErrTimeout or ErrStoreError.
func ConnectSentinel(ctx context.Context, sentinelURLs []string, masterName string, config ...StoreConfig) (*Store, error) {
	c, err := oneConfig(config)
	if err != nil {
		return nil, err
	}
	if c.topology() != topoMemory {
		return nil, topologyError("ConnectSentinel's config must not set URL, ClusterURLs or SentinelURLs")
	}
	c.SentinelURLs, c.SentinelMasterName = sentinelURLs, masterName
	return connect(ctx, c, topoSentinel)
}

// NewStore makes a store from config: one Redis node (URL), a Redis Cluster (ClusterURLs), a
// Sentinel-managed master (SentinelURLs and SentinelMasterName), or, when none is set, the
// embedded in-memory store. Connecting blocks until connected or config.ConnectTimeout
// passes.
func NewStore(ctx context.Context, config StoreConfig) (*Store, error) {
	t := config.topology()
	if t == topoConflict {
		return nil, topologyError("set only one of URL, ClusterURLs and SentinelURLs (with SentinelMasterName)")
	}
	return connect(ctx, config, t)
}

type topology int

const (
	topoMemory topology = iota
	topoSingle
	topoCluster
	topoSentinel
	topoConflict
)

func (c *StoreConfig) topology() topology {
	t, n := topoMemory, 0
	if c.URL != "" {
		t, n = topoSingle, n+1
	}
	if len(c.ClusterURLs) > 0 {
		t, n = topoCluster, n+1
	}
	if len(c.SentinelURLs) > 0 || c.SentinelMasterName != "" {
		t, n = topoSentinel, n+1
	}
	if n > 1 {
		return topoConflict
	}
	return t
}

func topologyError(msg string) error {
	return &Error{Code: ErrInvalidConfig, PodIndex: -1, Message: "INVALID_CONFIG: invalid config topology: " + msg}
}

// oneConfig is the optional config argument: none (the defaults) or one.
func oneConfig(config []StoreConfig) (StoreConfig, error) {
	switch len(config) {
	case 0:
		return StoreConfig{}, nil
	case 1:
		return config[0], nil
	}
	return StoreConfig{}, &Error{Code: ErrInvalidArgument, PodIndex: -1,
		Message: "INVALID_ARGUMENT: invalid config: give at most one StoreConfig"}
}

func connect(ctx context.Context, config StoreConfig, t topology) (*Store, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var sc C.sr_store_config
	C.sr_store_config_default(&sc)
	// The struct is Go memory that C reads, so the bytes it points to are copied to C memory.
	if config.KeyPrefix != "" {
		prefix, block := cArray(config.KeyPrefix)
		defer C.free(block)
		sc.key_prefix = *prefix
	}
	if config.ConnectTimeout > 0 {
		sc.connect_timeout_ms = C.uint64_t(max(config.ConnectTimeout.Milliseconds(), 1))
	}
	if config.CommandTimeout > 0 {
		sc.command_timeout_ms = C.uint64_t(max(config.CommandTimeout.Milliseconds(), 1))
	}
	if len(config.TLSCACertPEM) > 0 {
		pem := C.CBytes(config.TLSCACertPEM)
		defer C.free(pem)
		sc.tls_ca_cert_pem = (*C.uint8_t)(pem)
		sc.tls_ca_cert_pem_len = C.size_t(len(config.TLSCACertPEM))
	}
	sc.disable_propagation = C.bool(config.DisablePropagation)
	var ptr *C.sr_store
	err := call(func(e **C.sr_error) uint32 {
		switch t {
		case topoSingle:
			return C.sr_store_connect(str(config.URL), &sc, &ptr, e)
		case topoCluster:
			arr, block := cArray(config.ClusterURLs...)
			defer C.free(block)
			return C.sr_store_connect_cluster(arr, C.size_t(len(config.ClusterURLs)), &sc, &ptr, e)
		case topoSentinel:
			arr, block := cArray(config.SentinelURLs...)
			defer C.free(block)
			return C.sr_store_connect_sentinel(arr, C.size_t(len(config.SentinelURLs)), str(config.SentinelMasterName), &sc, &ptr, e)
		}
		return C.sr_store_memory(&sc, &ptr, e)
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

// run checks that s is open and ctx, then makes one C call on s.
func (s *Store) run(ctx context.Context, f func(**C.sr_error) uint32) error {
	if s.closed.Load() {
		return closedError("store")
	}
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := call(f)
	runtime.KeepAlive(s)
	return err
}

// SetLink links uid to pod for service unconditionally (ttl in seconds: -1 persistent,
// > 0 temporary) and returns the pod linked before, or -1.
func (s *Store) SetLink(ctx context.Context, namespace, uid, service string, pod, ttl int) (int, error) {
	var prev C.int64_t
	err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_set_link(s.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), C.int64_t(ttl), &prev, e)
	})
	return podOr(prev, err)
}

// SetLinkIfAbsent links uid to pod unless a link exists (which then wins, its TTL untouched)
// and returns the link in force.
func (s *Store) SetLinkIfAbsent(ctx context.Context, namespace, uid, service string, pod, ttl int) (Link, error) {
	var l C.sr_link
	if err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_set_link_if_absent(s.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), C.int64_t(ttl), &l, e)
	}); err != nil {
		return Link{PodIndex: -1}, err
	}
	link, _ := linkFromC(l)
	return link, nil
}

// TrySetLink links uid to pod unless it is persistently linked to another pod.
func (s *Store) TrySetLink(ctx context.Context, namespace, uid, service string, pod, ttl int) (TrySetOutcome, error) {
	var o C.sr_try_set_outcome
	if err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_try_set_link(s.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), C.int64_t(ttl), &o, e)
	}); err != nil {
		return TrySetOutcome{Owner: -1, Previous: -1}, err
	}
	return outcomeFromC(o), nil
}

// RemoveLink removes the link now (delay <= 0) or lets it expire after delay seconds; it
// reports whether a link existed.
func (s *Store) RemoveLink(ctx context.Context, namespace, uid, service string, delay int) (bool, error) {
	var removed C.bool
	err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_remove_link(s.ptr, str(namespace), str(uid), str(service), C.int64_t(delay), &removed, e)
	})
	return bool(removed) && err == nil, err
}

// RemoveLinkIf is RemoveLink only if the link points to pod (compare-and-delete).
func (s *Store) RemoveLinkIf(ctx context.Context, namespace, uid, service string, pod, delay int) (bool, error) {
	var removed C.bool
	err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_remove_link_if(s.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), C.int64_t(delay), &removed, e)
	})
	return bool(removed) && err == nil, err
}

// GetLink reads a link with its remaining TTL; ok is false if there is none.
func (s *Store) GetLink(ctx context.Context, namespace, uid, service string) (link Link, ok bool, err error) {
	var l C.sr_link
	if err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_get_link(s.ptr, str(namespace), str(uid), str(service), &l, e)
	}); err != nil {
		return Link{PodIndex: -1}, false, err
	}
	link, ok = linkFromC(l)
	return link, ok, nil
}

// GetLinkIfPersist reads a persistent link's pod; -1 if there is none or it is temporary.
func (s *Store) GetLinkIfPersist(ctx context.Context, namespace, uid, service string) (int, error) {
	var pod C.int64_t
	err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_get_link_if_persist(s.ptr, str(namespace), str(uid), str(service), &pod, e)
	})
	return podOr(pod, err)
}

// GetLinkServices returns the user's persistent links, service → pod.
func (s *Store) GetLinkServices(ctx context.Context, namespace, uid string) (map[string]int, error) {
	var l C.sr_service_links
	if err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_get_link_services(s.ptr, str(namespace), str(uid), &l, e)
	}); err != nil {
		return nil, err
	}
	return serviceLinks(&l), nil
}

// BatchGetLinks reads the links of many users of one service: pod → uids in input order;
// users without a link are left out.
func (s *Store) BatchGetLinks(ctx context.Context, namespace string, uids []string, service string) (map[int][]string, error) {
	arr, block := cArray(uids...)
	defer C.free(block)
	var g C.sr_pod_groups
	if err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_batch_get_links(s.ptr, str(namespace), arr, C.size_t(len(uids)), str(service), &g, e)
	}); err != nil {
		return nil, err
	}
	return podGroups(&g), nil
}

// PodStates returns the published pod states of service in namespace, sorted by pod
// (unparsable entries are skipped and logged).
func (s *Store) PodStates(ctx context.Context, namespace, service string) ([]PodState, error) {
	var l C.sr_pod_state_list
	if err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_store_pod_states(s.ptr, str(namespace), str(service), &l, e)
	}); err != nil {
		return nil, err
	}
	return podStates(&l), nil
}
