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

// The README's custom placement example: a Go func chooses the pod of each new user.
func ExamplePlacementPolicy() {
	ctx := context.Background()
	store := statefulroute.MemoryStore()
	cfg := statefulroute.DefaultBaseConfig()
	cfg.CpuFactor = 0 // load only, so that the example's loads are what the pods publish
	for i, load := range []int{30, 10, 20} {
		server, err := statefulroute.NewServerDriver(store, statefulroute.ServerInfo{Namespace: "default", ServiceName: "room", PodIndex: i}, &cfg)
		if err != nil {
			log.Fatal(err)
		}
		server.SetLoadState(ctx, load)
		if err := server.Start(ctx); err != nil {
			log.Fatal(err)
		}
		defer server.Stop(ctx)
	}
	client, err := statefulroute.NewClientDriver(store, statefulroute.ServerInfo{Namespace: "default", ServiceName: "gateway"}, &cfg)
	if err != nil {
		log.Fatal(err)
	}
	client.Init()
	defer client.Close()

	// Least loaded, counting the users this gateway placed since its last refresh.
	leastLoaded := func(pods []statefulroute.Candidate, req statefulroute.PlacementRequest) (int, error) {
		best := 0
		for i, p := range pods {
			if p.Load+p.Placed < pods[best].Load+pods[best].Placed {
				best = i
			}
		}
		return best, nil // an error (or a panic) here is an *Error from ComputeLinkedPod
	}
	if err := client.SetServicePlacement("room", statefulroute.PlacementPolicy(leastLoaded)); err != nil {
		log.Fatal(err)
	}
	pod, err := client.ComputeLinkedPod(ctx, "", "user123", "room")
	fmt.Println("user123 -> pod", pod, err)
	// Output: user123 -> pod 1 <nil>
}

// A Redis Cluster: any reachable seed node is enough (compiled, not run: it needs a cluster).
func ExampleConnectCluster() {
	ctx := context.Background()
	store, err := statefulroute.ConnectCluster(ctx,
		[]string{"redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"},
		statefulroute.StoreConfig{KeyPrefix: "chat"}) // the config is optional
	if err != nil {
		log.Fatal(err)
	}
	_ = store // share it among drivers, as with Connect
}

// A master that Redis Sentinels monitor as "main"; the store follows their failovers
// (compiled, not run: it needs sentinels).
func ExampleConnectSentinel() {
	ctx := context.Background()
	store, err := statefulroute.ConnectSentinel(ctx,
		[]string{"redis://sentinel-0:26379", "redis://sentinel-1:26379"}, "main")
	if err != nil {
		log.Fatal(err)
	}
	_ = store
}
