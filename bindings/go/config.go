package statefulroute

// #include <stdlib.h>
// #include "stateful_route.h"
import "C"

import (
	"time"
	"unsafe"
)

// BaseConfig holds the settings of both drivers (SPEC §9). The first four fields are the
// original interface's; the rest are new, and their zero value means "the default", so a
// config that sets only the original four behaves as documented.
type BaseConfig struct {
	// ServiceStateUpdatePeriodSeconds: how often a pod publishes its state and a gateway
	// refreshes its snapshot (> 0; fractions allowed). Default 30.
	ServiceStateUpdatePeriodSeconds float64
	// CpuFactor: weight of CPU in the weighted load, in [0, 1]; 0 = load only. Default 0.7.
	CpuFactor float64
	// TempLinkInfoCacheTimeSeconds: TTL of a temporary link (> 0). Default 300.
	TempLinkInfoCacheTimeSeconds int64
	// UserLinkInfoCacheTimeSeconds: how long a gateway caches a link (> 0, shorter than the
	// temporary link TTL). Default 240.
	UserLinkInfoCacheTimeSeconds int64

	// StaleAfterSeconds: a pod whose state is older is not alive. 0 = 3 periods.
	StaleAfterSeconds float64
	// LoadRange: pods within this load of the least loaded are all good candidates.
	// 0 = 500; negative = 0 (only the least loaded).
	LoadRange int64
	// Placement: how a client driver chooses a new user's pod: a Placement name, Rendezvous
	// with its load factor, or a PlacementPolicy func. nil (or "") = PlacementP2C. The library
	// checks the name (ErrInvalidConfig).
	Placement PlacementSetting
	// PlacementLoadFactor: for PlacementRendezvous, the bound c (>= 1); 0 = 1.25. Must be 0
	// for the other policies. A Rendezvous setting's own LoadFactor wins when not 0.
	PlacementLoadFactor float64
	// CacheCapacity: most links a client driver caches. 0 = 100000; negative turns the
	// cache off.
	CacheCapacity int64
	// DrainSeconds: how long Stop keeps the pod in DENY_NEW_CALL before SHUTDOWN. Default 0.
	DrainSeconds float64
	// ServeStaleSeconds: stale-if-error. While the store cannot be reached
	// (ErrStoreUnavailable, ErrTimeout), a client driver still answers with a cached link to an
	// alive pod that expired at most this long ago. 0 = 60; negative turns it off.
	ServeStaleSeconds float64
	// SlowStartSeconds: for this long after a gateway first sees a pod become routable
	// (started, restarted, un-drained), the pod is a candidate for a new user only with a
	// probability that ramps from 0 to 1, so gateways do not all send it every new user until
	// their next refresh (at most 86400). 0 = one update period; negative turns slow start off.
	SlowStartSeconds float64
	// DisableMetrics turns a ClientDriver's counting off: hits, misses, errors and placements
	// stay 0 in Metrics; gauges (pods, cache entries) are reported either way. False (the zero
	// value, the default) keeps metrics on.
	DisableMetrics bool
}

// Placement names a built-in placement policy.
type Placement string

// The built-in placement policies.
const (
	// PlacementP2C: two random candidates, the less loaded one wins (the default).
	PlacementP2C Placement = "p2c"
	// PlacementRandom: a uniformly random candidate.
	PlacementRandom Placement = "random"
	// PlacementRoundRobin: candidates in turn.
	PlacementRoundRobin Placement = "round_robin"
	// PlacementRendezvous: Rendezvous with the default load factor (1.25).
	PlacementRendezvous Placement = "rendezvous"
	// PlacementWeighted: random in proportion to the weight each pod publishes (SetWeight).
	PlacementWeighted Placement = "weighted"
)

// DefaultBaseConfig is the configuration with every default filled in.
func DefaultBaseConfig() BaseConfig {
	var c C.sr_base_config
	C.sr_base_config_default(&c)
	return BaseConfig{
		ServiceStateUpdatePeriodSeconds: float64(c.service_state_update_period_seconds),
		CpuFactor:                       float64(c.cpu_factor),
		TempLinkInfoCacheTimeSeconds:    int64(c.temp_link_info_cache_time_seconds),
		UserLinkInfoCacheTimeSeconds:    int64(c.user_link_info_cache_time_seconds),
		LoadRange:                       int64(c.load_range),
		Placement:                       Placement(C.GoStringN(c.placement.ptr, C.int(c.placement.len))),
		PlacementLoadFactor:             float64(c.placement_load_factor),
		CacheCapacity:                   int64(c.cache_capacity),
		DrainSeconds:                    float64(c.drain_seconds),
		ServeStaleSeconds:               float64(c.serve_stale_seconds),
		SlowStartSeconds:                float64(c.slow_start_seconds),
		DisableMetrics:                  bool(c.disable_metrics),
	}
}

// toC is b as the C struct. A PlacementPolicy is lent to the library for the call: call
// release after the driver's constructor (the driver keeps its own reference).
func (b *BaseConfig) toC() (c C.sr_base_config, release func(), err error) {
	release = func() {}
	C.sr_base_config_default(&c)
	if b == nil {
		return c, release, nil
	}
	c.service_state_update_period_seconds = C.double(b.ServiceStateUpdatePeriodSeconds)
	c.cpu_factor = C.double(b.CpuFactor)
	if b.TempLinkInfoCacheTimeSeconds < 0 || b.UserLinkInfoCacheTimeSeconds < 0 {
		return c, release, &Error{Code: ErrInvalidConfig, PodIndex: -1,
			Message: "INVALID_CONFIG: invalid config link cache times: must be > 0"}
	}
	c.temp_link_info_cache_time_seconds = C.uint64_t(b.TempLinkInfoCacheTimeSeconds)
	c.user_link_info_cache_time_seconds = C.uint64_t(b.UserLinkInfoCacheTimeSeconds)
	c.stale_after_seconds = C.double(b.StaleAfterSeconds)
	switch {
	case b.LoadRange > 0:
		c.load_range = C.uint32_t(min(b.LoadRange, 1<<32-1))
	case b.LoadRange < 0:
		c.load_range = 0
	}
	if name, factor, ok := placementName(b.Placement); ok && name != "" {
		// The struct is Go memory that C reads: the name is copied to C memory.
		placement, block := cArray(name)
		c.placement, c.placement_load_factor = *placement, C.double(b.PlacementLoadFactor)
		if factor != 0 {
			c.placement_load_factor = C.double(factor)
		}
		release = func() { C.free(block) }
	} else if f, ok := b.Placement.(PlacementPolicy); ok {
		policy, err := newCPolicy(f)
		if err != nil {
			return c, release, &Error{Code: ErrInvalidConfig, PodIndex: -1,
				Message: "INVALID_CONFIG: invalid config placement: the PlacementPolicy is nil"}
		}
		c.placement_policy = policy
		release = func() { C.sr_placement_policy_free(policy) }
	} else {
		c.placement_load_factor = C.double(b.PlacementLoadFactor)
	}
	switch {
	case b.CacheCapacity > 0:
		c.cache_capacity = C.uint64_t(b.CacheCapacity)
	case b.CacheCapacity < 0:
		c.cache_capacity = 0
	}
	c.drain_seconds = C.double(b.DrainSeconds)
	switch {
	case b.ServeStaleSeconds < 0:
		c.serve_stale_seconds = 0
	case b.ServeStaleSeconds != 0: // > 0, or NaN, which the library refuses
		c.serve_stale_seconds = C.double(b.ServeStaleSeconds)
	}
	// The C field has the same meaning (0 = one period, negative = off); NaN and +Inf reach
	// the library's validation as they are.
	c.slow_start_seconds = C.double(b.SlowStartSeconds)
	c.disable_metrics = C.bool(b.DisableMetrics)
	return c, release, nil
}

// ServerInfo says who a driver is (SPEC §9).
type ServerInfo struct {
	// Namespace is the driver's local namespace (a DNS label).
	Namespace string
	// ServiceName is the service this pod belongs to.
	ServiceName string
	// PodIndex is the StatefulSet ordinal; pod 0 is a real pod. A client driver ignores it.
	PodIndex int
}

// ServerInfoFromEnv says who this pod is, from its Kubernetes environment:
//   - Namespace: POD_NAMESPACE (the downward API), else
//     /var/run/secrets/kubernetes.io/serviceaccount/namespace;
//   - ServiceName: service unless it is "", else STATEFUL_ROUTE_SERVICE, else the
//     StatefulSet's name (the pod name without its ordinal);
//   - PodIndex: the ordinal ending POD_NAME, else HOSTNAME (room-12 is 12).
//
// An *Error with ErrInvalidConfig, naming the variable, when one cannot be derived or is not
// valid.
func ServerInfoFromEnv(service string) (ServerInfo, error) {
	var i C.sr_owned_server_info
	if err := call(func(e **C.sr_error) uint32 { return C.sr_server_info_from_env(str(service), &i, e) }); err != nil {
		return ServerInfo{}, err
	}
	defer C.sr_owned_server_info_free(&i)
	return ServerInfo{Namespace: C.GoString(i.namespace_name), ServiceName: C.GoString(i.service_name), PodIndex: int(i.pod_index)}, nil
}

// toC is s as the C struct, its strings copied into one C allocation (a Go struct that C
// reads may hold C pointers, not Go ones); free the block with C.free after the call.
func (s ServerInfo) toC() (C.sr_server_info, unsafe.Pointer) {
	strs, block := cArray(s.Namespace, s.ServiceName)
	two := unsafe.Slice(strs, 2)
	return C.sr_server_info{namespace_name: two[0], service_name: two[1], pod_index: C.int64_t(s.PodIndex)}, block
}

// StoreConfig holds the settings of a store. Zero values mean the defaults.
//
// The topology is one of: URL (one Redis node), ClusterURLs (a Redis Cluster),
// SentinelURLs with SentinelMasterName (a Sentinel-managed master), or none of them (the
// embedded in-memory store). Setting more than one is ErrInvalidConfig.
type StoreConfig struct {
	// URL of Redis: redis://[user:password@]host:port[/db], or rediss:// for TLS.
	URL string
	// ClusterURLs are seed nodes of a Redis Cluster (redis:// or rediss:// URLs); any reachable
	// one is enough, the client discovers the others. See ConnectCluster.
	ClusterURLs []string
	// SentinelURLs are Redis Sentinels (redis://host:port) that monitor the master named
	// SentinelMasterName. See ConnectSentinel.
	SentinelURLs []string
	// SentinelMasterName is the name the sentinels monitor the master under.
	SentinelMasterName string
	// KeyPrefix of every key (1-64 chars of [A-Za-z0-9._-]). Default "sf".
	KeyPrefix string
	// ConnectTimeout for (re)connecting. Default 5 s.
	ConnectTimeout time.Duration
	// CommandTimeout for one store command. Default 2 s.
	CommandTimeout time.Duration
	// TLSCACertPEM: for a rediss:// URL, a PEM certificate (chain) of the CA that signed the
	// server's certificate, trusted in addition to the system's roots. Default none. The
	// cluster and sentinel topologies do not use it yet (they trust the system's roots only).
	TLSCACertPEM []byte
	// DisablePropagation turns change propagation off (SPEC §11, for a Redis ACL without
	// PUBLISH/SUBSCRIBE): writers publish no events and client drivers follow the cache's TTL
	// rule alone. False (the zero value, the default) keeps it on: link and routing-state
	// changes reach every ClientDriver sharing the store within milliseconds (at once on the
	// memory store, which honours it too).
	DisablePropagation bool
}

// RoutingState is a pod's routing state (SPEC §1).
type RoutingState int

// The routing states. NotAlive appears only in a RoutingStateChange, for a pod that is
// absent, stale or shut down.
const (
	Ready       RoutingState = C.SR_ROUTING_READY
	DenyNewCall RoutingState = C.SR_ROUTING_DENY_NEW_CALL
	Shutdown    RoutingState = C.SR_ROUTING_SHUTDOWN
	NotAlive    RoutingState = C.SR_ROUTING_NOT_ALIVE
)

func (r RoutingState) String() string {
	switch r {
	case Ready:
		return "READY"
	case DenyNewCall:
		return "DENY_NEW_CALL"
	case Shutdown:
		return "SHUTDOWN"
	case NotAlive:
		return "NOT_ALIVE"
	}
	return "RoutingState(?)"
}

// RoutingStateChange is one pod's routing-state change as a gateway's refresh saw it.
type RoutingStateChange struct {
	Service  string
	PodIndex int
	Old, New RoutingState
}

// LinkChange is a link that changed (SPEC §11: a move, a removal, a replacement), made by any
// writer sharing the store, as a ClientDriver's link listener sees it (OnLinkChanged).
type LinkChange struct {
	Namespace, Service, UID string
	// Pod is the pod the link points to now; -1: removed.
	Pod int
	// Persistent tells whether the link is persistent now (false when removed).
	Persistent bool
}

// Link is a link as the store holds it.
type Link struct {
	// PodIndex is the pod the user is linked to.
	PodIndex int
	// Persistent links have no TTL.
	Persistent bool
	// TTL is the remaining lifetime of a temporary link (0 when persistent).
	TTL time.Duration
}

func linkFromC(l C.sr_link) (Link, bool) {
	if l.pod_index < 0 {
		return Link{PodIndex: -1}, false
	}
	out := Link{PodIndex: int(l.pod_index), Persistent: bool(l.persistent)}
	if !out.Persistent {
		out.TTL = time.Duration(float64(l.ttl_seconds) * float64(time.Second))
	}
	return out, true
}

// TrySetOutcome is the outcome of a try-set (SPEC §4).
type TrySetOutcome struct {
	// Accepted: the link now points to the requested pod.
	Accepted bool
	// Owner is the pod the link points to after the call.
	Owner int
	// Previous is the pod it pointed to before, or -1.
	Previous int
}

func outcomeFromC(o C.sr_try_set_outcome) TrySetOutcome {
	return TrySetOutcome{Accepted: bool(o.accepted), Owner: int(o.owner), Previous: int(o.previous)}
}

// PodState is one pod's published state.
type PodState struct {
	PodIndex     int
	Load         int
	UpdateMs     uint64
	RoutingState RoutingState
	// Weight is its placement weight (default 100; see SetWeight).
	Weight int
}
