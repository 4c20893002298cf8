package statefulroute

// #include "stateful_route.h"
// sr_status sr_go_set_log_callback(int32_t max_level, uintptr_t handle, sr_error **err);
import "C"

import (
	"context"
	"log/slog"
	"runtime/cgo"
)

// levelTrace is where the library's TRACE records land in slog.
const levelTrace = slog.LevelDebug - 4

// SetLogHandler sends the library's log records to h (process-wide), at the levels h is
// enabled for; nil stops forwarding. Records arrive from the library's threads, with the
// attribute "target" (the Rust module that logged).
func SetLogHandler(h slog.Handler) error {
	if h == nil {
		C.sr_clear_log_callback()
		return nil
	}
	ctx := context.Background()
	level := C.int32_t(C.SR_LOG_ERROR)
	for _, l := range []struct {
		slog slog.Level
		c    C.int32_t
	}{{levelTrace, C.SR_LOG_TRACE}, {slog.LevelDebug, C.SR_LOG_DEBUG}, {slog.LevelInfo, C.SR_LOG_INFO}, {slog.LevelWarn, C.SR_LOG_WARN}} {
		if h.Enabled(ctx, l.slog) {
			level = l.c
			break
		}
	}
	handle := cgo.NewHandle(h)
	err := call(func(e **C.sr_error) uint32 { return uint32(C.sr_go_set_log_callback(level, C.uintptr_t(handle), e)) })
	if err != nil {
		handle.Delete()
	}
	return err
}

func slogLevel(l C.sr_log_level) slog.Level {
	switch l {
	case C.SR_LOG_ERROR:
		return slog.LevelError
	case C.SR_LOG_WARN:
		return slog.LevelWarn
	case C.SR_LOG_INFO:
		return slog.LevelInfo
	case C.SR_LOG_DEBUG:
		return slog.LevelDebug
	}
	return levelTrace
}
