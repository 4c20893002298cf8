package statefulroute

// Extension points (issue 6): Go funcs as placement policy and load calculator, per-service
// placement, pod weights and custom load signals. The funcs are handed to the library as
// cgo.Handles; the exports in callbacks.go convert plain C data to Go values and back.

// #include <stdlib.h>
// #include "stateful_route.h"
// sr_status sr_go_placement_policy_new(uintptr_t handle, sr_placement_policy **out, sr_error **err);
// sr_status sr_go_set_load_calculator(const sr_server_driver *s, uintptr_t handle, sr_error **err);
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"time"
)

// PlacementSetting is how a client driver chooses a new user's pod among the good candidates:
// a built-in [Placement] name, [Rendezvous] with its load factor, or a [PlacementPolicy] of
// your own. Used in [BaseConfig].Placement (nil = PlacementP2C) and
// [ClientDriver.SetServicePlacement].
type PlacementSetting interface{ placementSetting() }

func (Placement) placementSetting() {}

// Rendezvous is rendezvous (highest-random-weight) hashing of (service, uid, pod) with bounded
// load: a pod whose load is above LoadFactor × the average is skipped. Deterministic, so every
// gateway picks the same pod for a new user. PlacementRendezvous is Rendezvous{}.
type Rendezvous struct {
	// LoadFactor is the bound c (>= 1); 0 means the default, 1.25.
	LoadFactor float64
}

func (Rendezvous) placementSetting() {}

// Candidate is one pod a placement policy may choose.
type Candidate struct {
	// PodIndex is the pod.
	PodIndex int
	// Load is its published weighted load.
	Load int
	// Placed counts the new users this driver placed on it since its snapshot was read.
	Placed int
	// RoutingState is Ready for every candidate today.
	RoutingState RoutingState
	// Age is how old its published state was when the snapshot was read.
	Age time.Duration
	// Weight is the placement weight the pod publishes (default 100; see SetWeight).
	Weight int
}

// PlacementRequest is the new user being placed.
type PlacementRequest struct {
	Namespace   string
	UID         string
	ServiceName string
	// Sequence counts the placements this driver made for this service before this one.
	Sequence uint64
}

// PlacementPolicy chooses a pod for a new user: it returns the index into candidates (never
// empty, sorted by pod index) of the chosen pod, or -1 to refuse (the caller of
// ComputeLinkedPod then gets ErrNoAvailablePod).
//
// An error fails the placement: ComputeLinkedPod returns an [*Error] whose message starts
// "INTERNAL: placement callback failed: " followed by the error's text, with the error's
// [Code] if it has one (errors.As), else ErrInternal. A panic is recovered and reported the
// same way ("... failed: panic: ..."); an index out of range is ErrInternal. Nothing is
// written to the store when a placement fails.
//
// It runs on the goroutine calling ComputeLinkedPod or on the library's threads, possibly on
// many at once; it must be quick, must not block and must not call blocking methods of this
// package.
type PlacementPolicy func(candidates []Candidate, req PlacementRequest) (int, error)

func (PlacementPolicy) placementSetting() {}

// newCPolicy lends f to the library as a C policy; free it with C.sr_placement_policy_free
// once the drivers that use it hold their own reference.
func newCPolicy(f PlacementPolicy) (*C.sr_placement_policy, error) {
	if f == nil {
		return nil, &Error{Code: ErrInvalidArgument, PodIndex: -1,
			Message: "INVALID_ARGUMENT: invalid placement: the PlacementPolicy is nil"}
	}
	h := cgo.NewHandle(f)
	var p *C.sr_placement_policy
	if err := call(func(e **C.sr_error) uint32 {
		return uint32(C.sr_go_placement_policy_new(C.uintptr_t(h), &p, e))
	}); err != nil {
		h.Delete() // the library did not take it
		return nil, err
	}
	return p, nil
}

// SetServicePlacement places new users of serviceName with p instead of the configured
// placement. Errors: ErrInvalidArgument (unknown name, nil), ErrInvalidConfig (a Rendezvous
// load factor below 1).
func (c *ClientDriver) SetServicePlacement(serviceName string, p PlacementSetting) error {
	svc := str(serviceName)
	var err error
	switch p := p.(type) {
	case PlacementPolicy:
		var policy *C.sr_placement_policy
		if policy, err = newCPolicy(p); err != nil {
			return err
		}
		err = call(func(e **C.sr_error) uint32 {
			return C.sr_client_set_service_placement_policy(c.ptr, svc.p, svc.n, policy, e)
		})
		C.sr_placement_policy_free(policy)
	case Placement, Rendezvous:
		name, factor := string(PlacementRendezvous), 0.0
		if n, ok := p.(Placement); ok {
			name = string(n)
		} else {
			factor = p.(Rendezvous).LoadFactor
		}
		nm := str(name)
		err = call(func(e **C.sr_error) uint32 {
			return C.sr_client_set_service_placement(c.ptr, svc.p, svc.n, nm.p, nm.n, C.double(factor), e)
		})
	default:
		err = &Error{Code: ErrInvalidArgument, PodIndex: -1, Message: "INVALID_ARGUMENT: invalid placement: nil"}
	}
	runtime.KeepAlive(c)
	return err
}

// LoadInput is what a load calculator sees.
type LoadInput struct {
	// Load is the app's load as set with SetLoadState.
	Load int
	// CpuPercent is this process's CPU use over the last period, percent of the machine
	// (0-100); 0 when CpuFactor is 0.
	CpuPercent float64
	// CpuFactor is the configured CpuFactor.
	CpuFactor float64
	// Signals are the custom signals set with SetLoadSignal.
	Signals map[string]float64
}

// LoadCalculator turns a pod's inputs into the weighted load it publishes (0 … 2^32-1).
// An error or a panic (recovered) makes the pod log it and publish SPEC's formula instead;
// TryWeightedLoad returns it as an [*Error] ("... load callback failed: ..."). It runs on the
// library's threads at each publish and inside WeightedLoad/TryWeightedLoad; it must be quick
// and must not call the driver.
type LoadCalculator func(LoadInput) (int, error)

// SetLoadCalculator replaces SPEC's load formula with f for every later publish; nil
// restores the formula.
func (s *ServerDriver) SetLoadCalculator(f LoadCalculator) error {
	var err error
	if f == nil {
		err = call(func(e **C.sr_error) uint32 { return C.sr_server_set_load_calculator(s.ptr, nil, nil, nil, e) })
	} else {
		h := cgo.NewHandle(f)
		err = call(func(e **C.sr_error) uint32 {
			return uint32(C.sr_go_set_load_calculator(s.ptr, C.uintptr_t(h), e))
		})
		if err != nil {
			h.Delete()
		}
	}
	runtime.KeepAlive(s)
	return err
}

// SetLoadSignal sets the custom load signal name (an identifier like a service name) to a
// finite value; a LoadCalculator sees it from the next publish.
func (s *ServerDriver) SetLoadSignal(name string, value float64) error {
	n := str(name)
	err := call(func(e **C.sr_error) uint32 {
		return C.sr_server_set_load_signal(s.ptr, n.p, n.n, C.double(value), e)
	})
	runtime.KeepAlive(s)
	return err
}

// SetWeight sets this pod's placement weight for PlacementWeighted (0 … 2^32-1; default 100;
// 0 = never chosen by weight). When running it is published at once.
func (s *ServerDriver) SetWeight(ctx context.Context, weight int) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := call(func(e **C.sr_error) uint32 { return C.sr_server_set_weight(s.ptr, C.int64_t(weight), e) })
	runtime.KeepAlive(s)
	return err
}

// GetWeight returns this pod's placement weight.
func (s *ServerDriver) GetWeight() int {
	var w C.int64_t
	C.sr_server_get_weight(s.ptr, &w, nil)
	runtime.KeepAlive(s)
	return int(w)
}

// TryWeightedLoad returns the load calculator's answer for the current inputs, or its error
// (where WeightedLoad falls back to SPEC's formula).
func (s *ServerDriver) TryWeightedLoad() (int, error) {
	var n C.int64_t
	err := call(func(e **C.sr_error) uint32 { return C.sr_server_try_weighted_load(s.ptr, &n, e) })
	runtime.KeepAlive(s)
	if err != nil {
		return -1, err
	}
	return int(n), nil
}
