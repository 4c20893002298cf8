package statefulroute

// #include <stdlib.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"runtime"
	"unsafe"
)

// The read side of a client driver, in its namespace: pod liveness, best pod, workload states
// and service-name tags. Each blocks only to load a service's snapshot on first use, or to
// reach the store for workload states and tags.

func (c *ClientDriver) pods(ctx context.Context, serviceName string, routable bool) ([]int, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	svc := str(serviceName)
	var l C.sr_pod_list
	err := call(func(e **C.sr_error) uint32 {
		if routable {
			return C.sr_client_routable_pods(c.ptr, svc.p, svc.n, &l, e)
		}
		return C.sr_client_alive_pods(c.ptr, svc.p, svc.n, &l, e)
	})
	runtime.KeepAlive(c)
	if err != nil {
		return nil, err
	}
	return podList(&l), nil
}

// AlivePods returns the alive pods of serviceName.
func (c *ClientDriver) AlivePods(ctx context.Context, serviceName string) ([]int, error) {
	return c.pods(ctx, serviceName, false)
}

// RoutablePods returns the pods of serviceName that take new users.
func (c *ClientDriver) RoutablePods(ctx context.Context, serviceName string) ([]int, error) {
	return c.pods(ctx, serviceName, true)
}

func (c *ClientDriver) isPod(ctx context.Context, serviceName string, pod int, routable bool) (bool, error) {
	if err := checkCtx(ctx); err != nil {
		return false, err
	}
	svc := str(serviceName)
	var yes C.bool
	err := call(func(e **C.sr_error) uint32 {
		if routable {
			return C.sr_client_is_pod_routable(c.ptr, svc.p, svc.n, C.int64_t(pod), &yes, e)
		}
		return C.sr_client_is_pod_alive(c.ptr, svc.p, svc.n, C.int64_t(pod), &yes, e)
	})
	runtime.KeepAlive(c)
	return bool(yes) && err == nil, err
}

// IsPodAlive reports whether pod of serviceName is alive.
func (c *ClientDriver) IsPodAlive(ctx context.Context, serviceName string, pod int) (bool, error) {
	return c.isPod(ctx, serviceName, pod, false)
}

// IsPodRoutable reports whether pod of serviceName takes new users.
func (c *ClientDriver) IsPodRoutable(ctx context.Context, serviceName string, pod int) (bool, error) {
	return c.isPod(ctx, serviceName, pod, true)
}

// BestPod returns the pod a new user of serviceName would get now.
func (c *ClientDriver) BestPod(ctx context.Context, serviceName string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return -1, err
	}
	svc := str(serviceName)
	var pod C.int64_t
	err := call(func(e **C.sr_error) uint32 { return C.sr_client_best_pod(c.ptr, svc.p, svc.n, &pod, e) })
	runtime.KeepAlive(c)
	if err != nil {
		return -1, err
	}
	return int(pod), nil
}

// PodStates returns the pod states of serviceName as of the last snapshot, by pod.
func (c *ClientDriver) PodStates(ctx context.Context, serviceName string) ([]PodState, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	svc := str(serviceName)
	var l C.sr_pod_state_list
	err := call(func(e **C.sr_error) uint32 { return C.sr_client_pod_states(c.ptr, svc.p, svc.n, &l, e) })
	runtime.KeepAlive(c)
	if err != nil {
		return nil, err
	}
	out := make([]PodState, int(l.len))
	if l.len > 0 {
		for i, s := range unsafe.Slice(l.states, int(l.len)) {
			out[i] = PodState{PodIndex: int(s.pod_index), Load: int(s.load), UpdateMs: uint64(s.update_ms),
				RoutingState: RoutingState(s.routing_state)}
		}
	}
	C.sr_pod_state_list_free(&l)
	return out, nil
}

// RefreshService re-reads serviceName's pod states now; listeners run for the changes it sees
// before it returns.
func (c *ClientDriver) RefreshService(ctx context.Context, serviceName string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	svc := str(serviceName)
	err := call(func(e **C.sr_error) uint32 { return C.sr_client_refresh_service(c.ptr, svc.p, svc.n, e) })
	runtime.KeepAlive(c)
	return err
}

// GetWorkloadState returns serviceName's workload state; ok is false if none is set.
func (c *ClientDriver) GetWorkloadState(ctx context.Context, serviceName string) (state string, ok bool, err error) {
	if err := checkCtx(ctx); err != nil {
		return "", false, err
	}
	svc := str(serviceName)
	var p *C.char
	err = call(func(e **C.sr_error) uint32 { return C.sr_client_get_workload_state(c.ptr, svc.p, svc.n, &p, e) })
	runtime.KeepAlive(c)
	if err != nil {
		return "", false, err
	}
	state, ok = goString(p)
	return state, ok, nil
}

// SetWorkloadState sets serviceName's workload state (a word; "READY" means ready).
func (c *ClientDriver) SetWorkloadState(ctx context.Context, serviceName, state string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	svc, st := str(serviceName), str(state)
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_set_workload_state(c.ptr, svc.p, svc.n, st.p, st.n, e)
	})
	runtime.KeepAlive(c)
	return err
}

// BatchGetWorkloadState returns the workload states of serviceNames in input order; "" where
// none is set.
func (c *ClientDriver) BatchGetWorkloadState(ctx context.Context, serviceNames []string) ([]string, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	arr, block := cArray(serviceNames)
	defer C.free(block)
	var l C.sr_string_list
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_batch_get_workload_state(c.ptr, arr, C.size_t(len(serviceNames)), &l, e)
	})
	runtime.KeepAlive(c)
	if err != nil {
		return nil, err
	}
	out := make([]string, int(l.len))
	if l.len > 0 {
		for i, p := range unsafe.Slice(l.strings, int(l.len)) {
			if p != nil {
				out[i] = C.GoString(p)
			}
		}
	}
	C.sr_string_list_free(&l)
	return out, nil
}

// IsWorkloadReady reports whether serviceName's workload state is "READY".
func (c *ClientDriver) IsWorkloadReady(ctx context.Context, serviceName string) (bool, error) {
	if err := checkCtx(ctx); err != nil {
		return false, err
	}
	svc := str(serviceName)
	var yes C.bool
	err := call(func(e **C.sr_error) uint32 { return C.sr_client_is_workload_ready(c.ptr, svc.p, svc.n, &yes, e) })
	runtime.KeepAlive(c)
	return bool(yes) && err == nil, err
}

// SetGlobalServiceNameTag makes tag stand for serviceName.
func (c *ClientDriver) SetGlobalServiceNameTag(ctx context.Context, tag, serviceName string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	t, svc := str(tag), str(serviceName)
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_client_set_global_service_name_tag(c.ptr, t.p, t.n, svc.p, svc.n, e)
	})
	runtime.KeepAlive(c)
	return err
}

// GetServiceNameByTag returns the service tag stands for; ok is false if the tag is not set.
func (c *ClientDriver) GetServiceNameByTag(ctx context.Context, tag string) (serviceName string, ok bool, err error) {
	if err := checkCtx(ctx); err != nil {
		return "", false, err
	}
	t := str(tag)
	var p *C.char
	err = call(func(e **C.sr_error) uint32 { return C.sr_client_get_service_name_by_tag(c.ptr, t.p, t.n, &p, e) })
	runtime.KeepAlive(c)
	if err != nil {
		return "", false, err
	}
	serviceName, ok = goString(p)
	return serviceName, ok, nil
}
