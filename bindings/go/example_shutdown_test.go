//go:build unix

package statefulroute_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	statefulroute "github.com/stateful-route/stateful-route/bindings/go"
)

// Graceful shutdown in Kubernetes: on SIGTERM the pod drains (DENY_NEW_CALL for DrainSeconds),
// then publishes SHUTDOWN, so gateways move its temporary users at once instead of waiting for
// it to go stale. statefulroute.StopOnSignal(ctx, server) does the same in one call.
func ExampleServerDriver_Stop_onSIGTERM() {
	store := statefulroute.MemoryStore()
	info := statefulroute.ServerInfo{Namespace: "default", ServiceName: "room", PodIndex: 0}
	// In a pod: info, err := statefulroute.ServerInfoFromEnv("")
	server, err := statefulroute.NewServerDriver(store, info, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Start(context.Background()); err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// ... serve; here the example sends itself the SIGTERM Kubernetes would send.
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	<-ctx.Done()
	if err := server.Stop(context.Background()); err != nil {
		log.Fatal(err)
	}

	states, err := store.PodStates(context.Background(), "default", "room")
	fmt.Println(states[0].RoutingState, err)
	// Output: SHUTDOWN <nil>
}
