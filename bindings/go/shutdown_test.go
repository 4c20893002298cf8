package statefulroute

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// publishedState is the routing state pod 0 of service last published in s.
func publishedState(t *testing.T, s *Store, service string) RoutingState {
	t.Helper()
	for _, p := range must(s.PodStates(bg, ns, service))(t) {
		if p.PodIndex == 0 {
			return p.RoutingState
		}
	}
	t.Fatalf("pod 0 of %s published nothing", service)
	return NotAlive
}

func TestStopOnSignalStopsThePodOnSIGTERM(t *testing.T) {
	s := freshStore(t, "redis")
	server := startPod(t, s, "room", 0, 0)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- stopOnSignal(bg, server, func() { close(ready) }, syscall.SIGTERM) }()
	select {
	case <-ready: // SIGTERM is caught from here on
	case err := <-done:
		t.Fatalf("returned before the signal: %v", err)
	}
	if state := publishedState(t, s, "room"); state != Ready {
		t.Fatalf("before the signal: %v", state)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("StopOnSignal did not return within 10 s of SIGTERM")
	}
	if state := publishedState(t, s, "room"); state != Shutdown {
		t.Fatalf("after SIGTERM the pod publishes %v, want SHUTDOWN", state)
	}
}

func TestStopOnSignalStopsThePodWhenCtxIsDone(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		server := startPod(t, s, "room", 0, 0)
		ctx, cancel := context.WithCancel(bg)
		done := make(chan error, 1)
		go func() { done <- StopOnSignal(ctx, server) }()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("StopOnSignal did not return within 10 s of its ctx being done")
		}
		if state := publishedState(t, s, "room"); state != Shutdown {
			t.Fatalf("the pod publishes %v, want SHUTDOWN", state)
		}
		if err := server.Start(bg); err == nil {
			t.Error("a stopped pod started again")
		}
	})
}
