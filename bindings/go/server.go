package statefulroute

// #include <stdlib.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"runtime"
)

// ServerDriver is the pod side: it publishes the pod's state and owns its users' persistent
// links (SPEC §7). Safe for use by many goroutines.
type ServerDriver struct {
	ptr *C.sr_server_driver
}

// NewServerDriver makes the driver of pod info over store. config nil means
// DefaultBaseConfig(). It publishes nothing until Start.
func NewServerDriver(store *Store, info ServerInfo, config *BaseConfig) (*ServerDriver, error) {
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
	var ptr *C.sr_server_driver
	err = call(func(e **C.sr_error) uint32 { return C.sr_server_new(store.ptr, &ci, &cfg, &ptr, e) })
	runtime.KeepAlive(store)
	if err != nil {
		return nil, err
	}
	s := &ServerDriver{ptr: ptr}
	runtime.AddCleanup(s, func(p *C.sr_server_driver) {
		C.sr_server_free(p)
		released.servers.Add(1)
	}, ptr)
	return s, nil
}

// run checks ctx, then makes one C call on s.
func (s *ServerDriver) run(ctx context.Context, f func(**C.sr_error) uint32) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := call(f)
	runtime.KeepAlive(s)
	return err
}

// Start publishes the pod's state at once, then every period. A second Start is
// ErrInvalidArgument; a Start after Stop is ErrClosed.
func (s *ServerDriver) Start(ctx context.Context) error {
	return s.run(ctx, func(e **C.sr_error) uint32 { return C.sr_server_start(s.ptr, e) })
}

// Stop drains and stops: publishes DENY_NEW_CALL, waits DrainSeconds, publishes SHUTDOWN.
// Idempotent. If ctx ends first, Stop returns ctx's error and the shutdown still finishes in
// the background.
func (s *ServerDriver) Stop(ctx context.Context) error {
	if ctx == nil || ctx.Done() == nil {
		return s.stop()
	}
	done := make(chan error, 1)
	go func() { done <- s.stop() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *ServerDriver) stop() error {
	return s.run(nil, func(e **C.sr_error) uint32 { return C.sr_server_stop(s.ptr, e) })
}

// Close stops the driver (as Stop without a deadline). The memory is released when s becomes
// unreachable.
func (s *ServerDriver) Close() error {
	return s.stop()
}

// SetLoadState sets the app's load (>= 0), published with the next period.
func (s *ServerDriver) SetLoadState(ctx context.Context, load int) error {
	return s.run(ctx, func(e **C.sr_error) uint32 { return C.sr_server_set_load_state(s.ptr, C.int64_t(load), e) })
}

// GetLoadState returns the app's load as last set.
func (s *ServerDriver) GetLoadState() int {
	var n C.int64_t
	C.sr_server_get_load_state(s.ptr, &n, nil)
	runtime.KeepAlive(s)
	return int(n)
}

// WeightedLoad returns the load the pod publishes (SPEC §5) from the last CPU sample.
func (s *ServerDriver) WeightedLoad() int {
	var n C.int64_t
	C.sr_server_weighted_load(s.ptr, &n, nil)
	runtime.KeepAlive(s)
	return int(n)
}

// SetRoutingState sets the routing state (Ready, DenyNewCall or Shutdown); when running it is
// published at once.
func (s *ServerDriver) SetRoutingState(ctx context.Context, state RoutingState) error {
	return s.run(ctx, func(e **C.sr_error) uint32 { return C.sr_server_set_routing_state(s.ptr, C.int32_t(state), e) })
}

// GetRoutingState returns the routing state as last set.
func (s *ServerDriver) GetRoutingState() RoutingState {
	var r uint32
	C.sr_server_get_routing_state(s.ptr, &r, nil)
	runtime.KeepAlive(s)
	return RoutingState(r)
}

// SetLinkedPod links uid persistently to pod and returns the pod linked before, or -1.
func (s *ServerDriver) SetLinkedPod(ctx context.Context, namespace, uid, service string, pod int) (int, error) {
	var prev C.int64_t
	err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_server_set_linked_pod(s.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), &prev, e)
	})
	return podOr(prev, err)
}

// TrySetLinkedPod links uid persistently to pod unless it is persistently linked to another.
func (s *ServerDriver) TrySetLinkedPod(ctx context.Context, namespace, uid, service string, pod int) (TrySetOutcome, error) {
	var o C.sr_try_set_outcome
	if err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_server_try_set_linked_pod(s.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), &o, e)
	}); err != nil {
		return TrySetOutcome{Owner: -1, Previous: -1}, err
	}
	return outcomeFromC(o), nil
}

// RemoveLinkedPod removes the link now (delay <= 0) or after delay seconds; it reports
// whether a link existed.
func (s *ServerDriver) RemoveLinkedPod(ctx context.Context, namespace, uid, service string, delay int) (bool, error) {
	var removed C.bool
	err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_server_remove_linked_pod(s.ptr, str(namespace), str(uid), str(service), C.int64_t(delay), &removed, e)
	})
	return bool(removed) && err == nil, err
}

// RemoveLinkedPodWithId is RemoveLinkedPod only if the link points to pod.
func (s *ServerDriver) RemoveLinkedPodWithId(ctx context.Context, namespace, uid, service string, pod, delay int) (bool, error) {
	var removed C.bool
	err := s.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_server_remove_linked_pod_with_id(s.ptr, str(namespace), str(uid), str(service), C.int64_t(pod), C.int64_t(delay), &removed, e)
	})
	return bool(removed) && err == nil, err
}
