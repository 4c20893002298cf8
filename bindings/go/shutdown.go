package statefulroute

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// StopOnSignal waits for one of sigs (SIGTERM and os.Interrupt when none are given), or for ctx
// to be done (nil: never), then stops s gracefully (Stop: DENY_NEW_CALL, DrainSeconds, SHUTDOWN) and returns
// Stop's error. Kubernetes sends SIGTERM when it deletes a pod; run it in main after Start:
//
//	if err := statefulroute.StopOnSignal(ctx, server); err != nil {
//		log.Print(err)
//	}
//
// The signals are caught from the call on (signal.NotifyContext) until it returns, so they do
// not end the process meanwhile. Give the pod a terminationGracePeriodSeconds longer than
// DrainSeconds.
func StopOnSignal(ctx context.Context, s *ServerDriver, sigs ...os.Signal) error {
	return stopOnSignal(ctx, s, nil, sigs...)
}

// stopOnSignal is StopOnSignal; ready (if not nil) runs once the signals are caught.
func stopOnSignal(ctx context.Context, s *ServerDriver, ready func(), sigs ...os.Signal) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGTERM, os.Interrupt}
	}
	ctx, stop := signal.NotifyContext(ctx, sigs...)
	defer stop()
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	return s.Stop(context.Background())
}
