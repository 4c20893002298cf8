package statefulroute_test

import (
	"context"
	"fmt"
	"log"

	statefulroute "github.com/stateful-route/stateful-route/bindings/go"
)

// The README's Go example: one pod and one gateway on the embedded store.
func Example() {
	ctx := context.Background()
	store := statefulroute.MemoryStore() // or: statefulroute.Connect(ctx, "redis://127.0.0.1:6379")
	pod := statefulroute.ServerInfo{Namespace: "default", ServiceName: "room", PodIndex: 0}
	server, err := statefulroute.NewServerDriver(store, pod, nil) // nil: DefaultBaseConfig()
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer server.Stop(ctx)

	client, err := statefulroute.NewClientDriver(store, pod, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Init(); err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	podIndex, err := client.ComputeLinkedPod(ctx, "", "user123", "room")
	fmt.Println("user123 -> pod", podIndex, err)
	// Output: user123 -> pod 0 <nil>
}
