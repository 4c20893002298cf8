package statefulroute

// The Go side of the library's callbacks. Each registration hands the library a cgo.Handle
// (an integer, never a Go pointer) as user data; the C shims in callbacks.c forward to these
// exports, and the library's release callback deletes the handle once it will not call again.

// #include <stdint.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/cgo"
	"time"
	"unsafe"
)

// listenerPanicked is a listener's panic, logged: a panic must not cross the C frames below
// (the core also goes on calling its other listeners after one fails).
func listenerPanicked(kind string) {
	if r := recover(); r != nil {
		slog.Error("stateful_route: a "+kind+" listener panicked", "panic", r)
	}
}

//export srGoRoutingStateChanged
func srGoRoutingStateChanged(h C.uintptr_t, ch *C.sr_routing_state_change) {
	defer listenerPanicked("routing-state")
	f := cgo.Handle(h).Value().(func(RoutingStateChange))
	f(RoutingStateChange{
		Service:  goStr(ch.service),
		PodIndex: int(ch.pod_index),
		Old:      RoutingState(ch.old_state),
		New:      RoutingState(ch.new_state),
	})
}

//export srGoLinkChanged
func srGoLinkChanged(h C.uintptr_t, ch *C.sr_link_change) {
	defer listenerPanicked("link")
	f := cgo.Handle(h).Value().(func(LinkChange))
	f(LinkChange{
		Namespace:  goStr(ch.namespace_name),
		Service:    goStr(ch.service),
		UID:        goStr(ch.uid),
		Pod:        int(ch.pod_index),
		Persistent: bool(ch.persistent),
	})
}

//export srGoLog
func srGoLog(h C.uintptr_t, r *C.sr_log_record) {
	handler := cgo.Handle(h).Value().(slog.Handler)
	level := slogLevel(C.sr_log_level(r.level))
	ctx := context.Background()
	if !handler.Enabled(ctx, level) {
		return
	}
	rec := slog.NewRecord(time.Now(), level, goStr(r.message), 0)
	rec.AddAttrs(slog.String("target", goStr(r.target)))
	_ = handler.Handle(ctx, rec)
}

//export srGoRelease
func srGoRelease(h C.uintptr_t) {
	cgo.Handle(h).Delete()
	released.callbacks.Add(1)
}

//export srGoPlace
func srGoPlace(h C.uintptr_t, cands *C.sr_candidate, n C.size_t, req *C.sr_placement_request,
	choice *C.int64_t, errOut **C.sr_error) (status C.int32_t) {
	// A panic must not cross the C frames below: it becomes the placement's error.
	defer func() {
		if r := recover(); r != nil {
			status = callbackFailed(errOut, fmt.Errorf("panic: %v", r))
		}
	}()
	f := cgo.Handle(h).Value().(PlacementPolicy)
	in := make([]Candidate, int(n))
	for i, c := range unsafe.Slice(cands, int(n)) {
		in[i] = Candidate{
			PodIndex:      int(c.pod_index),
			Load:          int(c.load),
			Placed:        int(c.placed),
			EffectiveLoad: uint64(c.effective_load),
			RoutingState:  RoutingState(c.routing_state),
			Age:           time.Duration(c.age_ms) * time.Millisecond,
			Weight:        int(c.weight),
		}
	}
	i, err := f(in, PlacementRequest{
		Namespace: goStr(req.namespace_name),
		UID:       goStr(req.uid),
		Service:   goStr(req.service),
		Sequence:  uint64(req.sequence),
	})
	if err != nil {
		return callbackFailed(errOut, err)
	}
	*choice = C.int64_t(i)
	return C.SR_OK
}

//export srGoLoad
func srGoLoad(h C.uintptr_t, in *C.sr_load_input, load *C.int64_t, errOut **C.sr_error) (status C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			status = callbackFailed(errOut, fmt.Errorf("panic: %v", r))
		}
	}()
	f := cgo.Handle(h).Value().(LoadCalculator)
	signals := make(map[string]float64, int(in.signals_len))
	if in.signals_len > 0 {
		for _, s := range unsafe.Slice(in.signals, int(in.signals_len)) {
			signals[goStr(s.name)] = float64(s.value)
		}
	}
	l, err := f(LoadInput{
		Load:       int(in.load),
		CpuPercent: float64(in.cpu_percent),
		CpuFactor:  float64(in.cpu_factor),
		Signals:    signals,
	})
	if err != nil {
		return callbackFailed(errOut, err)
	}
	*load = C.int64_t(l)
	return C.SR_OK
}

// callbackFailed hands err back to the library as the callback's error: its Code if it has
// one, else ErrInternal.
func callbackFailed(errOut **C.sr_error, err error) C.int32_t {
	code := ErrInternal
	var c Code
	if errors.As(err, &c) && c.valid() {
		code = c
	}
	*errOut = C.sr_error_new(C.int32_t(code), str(err.Error()))
	return C.int32_t(code)
}

// goStr copies a string the library lends to a callback.
func goStr(s C.sr_str) string { return C.GoStringN(s.ptr, C.int(s.len)) }
