package statefulroute

// The Go side of the library's callbacks. Each registration hands the library a cgo.Handle
// (an integer, never a Go pointer) as user data; the C shims in callbacks.c forward to these
// exports, and the library's release callback deletes the handle once it will not call again.

// #include <stdint.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"log/slog"
	"runtime/cgo"
	"time"
)

//export srGoRoutingStateChanged
func srGoRoutingStateChanged(h C.uintptr_t, ch *C.sr_routing_state_change) {
	f := cgo.Handle(h).Value().(func(RoutingStateChange))
	f(RoutingStateChange{
		Service:  C.GoStringN(ch.service, C.int(ch.service_len)),
		PodIndex: int(ch.pod_index),
		Old:      RoutingState(ch.old_state),
		New:      RoutingState(ch.new_state),
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
	rec := slog.NewRecord(time.Now(), level, C.GoStringN(r.message, C.int(r.message_len)), 0)
	rec.AddAttrs(slog.String("target", C.GoStringN(r.target, C.int(r.target_len))))
	_ = handler.Handle(ctx, rec)
}

//export srGoRelease
func srGoRelease(h C.uintptr_t) {
	cgo.Handle(h).Delete()
}
