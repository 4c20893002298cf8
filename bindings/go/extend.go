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
	// EffectiveLoad is its load as placement compares it: Load plus a share per placed user.
	EffectiveLoad uint64
	// RoutingState is Ready for every candidate today.
	RoutingState RoutingState
	// Age is how old its published state was when the snapshot was read (age_ms).
	Age time.Duration
	// Weight is the placement weight the pod publishes (default 100; see SetWeight).
	Weight int
}

// PlacementRequest is the new user being placed.
type PlacementRequest struct {
	Namespace string
	UID       string
	Service   string
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

// placementName is p's built-in name and load factor ("rendezvous" for Rendezvous); ok is
// false for a PlacementPolicy or nil. The library checks the name.
func placementName(p PlacementSetting) (name string, factor float64, ok bool) {
	switch p := p.(type) {
	case Placement:
		return string(p), 0, true
	case Rendezvous:
		return string(PlacementRendezvous), p.LoadFactor, true
	}
	return "", 0, false
}

// SetServicePlacement places new users of service with placement instead of the configured
// one (the load factor is Rendezvous's). Errors: ErrInvalidConfig (unknown name, a Rendezvous
// load factor below 1), ErrInvalidArgument (nil).
func (c *ClientDriver) SetServicePlacement(service string, placement PlacementSetting) error {
	if name, factor, ok := placementName(placement); ok {
		return c.run(nil, func(e **C.sr_error) uint32 {
			return C.sr_client_set_service_placement(c.ptr, str(service), str(name), C.double(factor), e)
		})
	}
	f, _ := placement.(PlacementPolicy)
	policy, err := newCPolicy(f)
	if err != nil {
		return err
	}
	defer C.sr_placement_policy_free(policy)
	return c.run(nil, func(e **C.sr_error) uint32 {
		return C.sr_client_set_service_placement_policy(c.ptr, str(service), policy, e)
	})
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

// SetLoadCalculator replaces SPEC's load formula with calculator for every later publish;
// nil restores the formula.
func (s *ServerDriver) SetLoadCalculator(calculator LoadCalculator) error {
	if calculator == nil {
		return s.run(nil, func(e **C.sr_error) uint32 { return C.sr_server_set_load_calculator(s.ptr, nil, nil, nil, e) })
	}
	h := cgo.NewHandle(calculator)
	err := s.run(nil, func(e **C.sr_error) uint32 { return uint32(C.sr_go_set_load_calculator(s.ptr, C.uintptr_t(h), e)) })
	if err != nil {
		h.Delete() // the library did not take it
	}
	return err
}

// SetLoadSignal sets the custom load signal name (an identifier like a service name) to a
// finite value; a LoadCalculator sees it from the next publish.
func (s *ServerDriver) SetLoadSignal(name string, value float64) error {
	return s.run(nil, func(e **C.sr_error) uint32 { return C.sr_server_set_load_signal(s.ptr, str(name), C.double(value), e) })
}

// SetWeight sets this pod's placement weight for PlacementWeighted (0 … 2^32-1; default 100;
// 0 = never chosen by weight). When running it is published at once.
func (s *ServerDriver) SetWeight(ctx context.Context, weight int) error {
	return s.run(ctx, func(e **C.sr_error) uint32 { return C.sr_server_set_weight(s.ptr, C.int64_t(weight), e) })
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
	err := s.run(nil, func(e **C.sr_error) uint32 { return C.sr_server_try_weighted_load(s.ptr, &n, e) })
	return podOr(n, err)
}
