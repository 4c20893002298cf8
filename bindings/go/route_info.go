package statefulroute

// #include <stdlib.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"unsafe"
)

// The read side of a client driver, in its namespace: pod liveness, best pod, workload states
// and service-name tags. Each blocks only to load a service's snapshot on first use, or to
// reach the store for workload states and tags.

// AlivePods returns the alive pods of service.
func (c *ClientDriver) AlivePods(ctx context.Context, service string) ([]int, error) {
	var l C.sr_pod_list
	if err := c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_alive_pods(c.ptr, str(service), &l, e) }); err != nil {
		return nil, err
	}
	return podList(&l), nil
}

// RoutablePods returns the pods of service that take new users.
func (c *ClientDriver) RoutablePods(ctx context.Context, service string) ([]int, error) {
	var l C.sr_pod_list
	if err := c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_routable_pods(c.ptr, str(service), &l, e) }); err != nil {
		return nil, err
	}
	return podList(&l), nil
}

// IsPodAlive reports whether pod of service is alive.
func (c *ClientDriver) IsPodAlive(ctx context.Context, service string, pod int) (bool, error) {
	var yes C.bool
	err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_is_pod_alive(c.ptr, str(service), C.int64_t(pod), &yes, e)
	})
	return bool(yes) && err == nil, err
}

// IsPodRoutable reports whether pod of service takes new users.
func (c *ClientDriver) IsPodRoutable(ctx context.Context, service string, pod int) (bool, error) {
	var yes C.bool
	err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_is_pod_routable(c.ptr, str(service), C.int64_t(pod), &yes, e)
	})
	return bool(yes) && err == nil, err
}

// BestPod returns the pod a new user of service would get now.
func (c *ClientDriver) BestPod(ctx context.Context, service string) (int, error) {
	var pod C.int64_t
	err := c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_best_pod(c.ptr, str(service), &pod, e) })
	return podOr(pod, err)
}

// PodStates returns the pod states of service as of the last snapshot, by pod.
func (c *ClientDriver) PodStates(ctx context.Context, service string) ([]PodState, error) {
	var l C.sr_pod_state_list
	if err := c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_pod_states(c.ptr, str(service), &l, e) }); err != nil {
		return nil, err
	}
	return podStates(&l), nil
}

func podStates(l *C.sr_pod_state_list) []PodState {
	out := make([]PodState, int(l.len))
	if l.len > 0 {
		for i, s := range unsafe.Slice(l.states, int(l.len)) {
			out[i] = PodState{PodIndex: int(s.pod_index), Load: int(s.load), UpdateMs: uint64(s.update_ms),
				RoutingState: RoutingState(s.routing_state), Weight: int(s.weight)}
		}
	}
	C.sr_pod_state_list_free(l)
	return out
}

// RefreshService re-reads service's pod states now; listeners run for the changes it sees
// before it returns.
func (c *ClientDriver) RefreshService(ctx context.Context, service string) error {
	return c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_refresh_service(c.ptr, str(service), e) })
}

// GetWorkloadState returns service's workload state; ok is false if none is set.
func (c *ClientDriver) GetWorkloadState(ctx context.Context, service string) (state string, ok bool, err error) {
	var p *C.char
	if err := c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_get_workload_state(c.ptr, str(service), &p, e) }); err != nil {
		return "", false, err
	}
	state, ok = goString(p)
	return state, ok, nil
}

// SetWorkloadState sets service's workload state (a word; "READY" means ready).
func (c *ClientDriver) SetWorkloadState(ctx context.Context, service, state string) error {
	return c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_set_workload_state(c.ptr, str(service), str(state), e)
	})
}

// BatchGetWorkloadState returns the workload states of services in input order; "" where
// none is set.
func (c *ClientDriver) BatchGetWorkloadState(ctx context.Context, services []string) ([]string, error) {
	arr, block := cArray(services...)
	defer C.free(block)
	var l C.sr_string_list
	if err := c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_batch_get_workload_state(c.ptr, arr, C.size_t(len(services)), &l, e)
	}); err != nil {
		return nil, err
	}
	out := goStrings(l.strings, l.len)
	C.sr_string_list_free(&l)
	return out, nil
}

// IsWorkloadReady reports whether service's workload state is "READY".
func (c *ClientDriver) IsWorkloadReady(ctx context.Context, service string) (bool, error) {
	var yes C.bool
	err := c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_is_workload_ready(c.ptr, str(service), &yes, e) })
	return bool(yes) && err == nil, err
}

// SetGlobalServiceNameTag makes tag stand for service.
func (c *ClientDriver) SetGlobalServiceNameTag(ctx context.Context, tag, service string) error {
	return c.run(ctx, func(e **C.sr_error) uint32 {
		return C.sr_client_set_global_service_name_tag(c.ptr, str(tag), str(service), e)
	})
}

// GetServiceNameByTag returns the service tag stands for; ok is false if the tag is not set.
func (c *ClientDriver) GetServiceNameByTag(ctx context.Context, tag string) (service string, ok bool, err error) {
	var p *C.char
	if err := c.run(ctx, func(e **C.sr_error) uint32 { return C.sr_client_get_service_name_by_tag(c.ptr, str(tag), &p, e) }); err != nil {
		return "", false, err
	}
	service, ok = goString(p)
	return service, ok, nil
}
