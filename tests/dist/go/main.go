// The release scenario for a Go program built against the shipped static library
// (tests/dist-check.sh, no cargo): two pods, the busy one loaded before start; a gateway places
// user1, pod 0 drains, user2 goes to pod 1, a bad uid is INVALID_ARGUMENT. Memory store, then
// Redis. Usage: scenario REDIS_URL SERVICE
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	statefulroute "github.com/stateful-route/stateful-route/bindings/go"
)

func scenario(ctx context.Context, label string, store *statefulroute.Store, svc string) {
	config := statefulroute.DefaultBaseConfig()
	config.ServiceStateUpdatePeriodSeconds = 30
	config.CpuFactor = 0
	info := func(pod int) statefulroute.ServerInfo {
		return statefulroute.ServerInfo{Namespace: "default", ServiceName: svc, PodIndex: pod}
	}
	s0, err := statefulroute.NewServerDriver(store, info(0), &config)
	check(err)
	s1, err := statefulroute.NewServerDriver(store, info(1), &config)
	check(err)
	check(s1.SetLoadState(ctx, 1000))
	check(s0.Start(ctx))
	check(s1.Start(ctx))
	client, err := statefulroute.NewClientDriver(store, info(0), &config)
	check(err)
	check(client.Init())
	pod, err := client.ComputeLinkedPod(ctx, "", "user1", svc)
	check(err)
	fmt.Printf("%s: user1 -> pod %d\n", label, pod)
	check(s0.SetRoutingState(ctx, statefulroute.DenyNewCall))
	check(client.RefreshService(ctx, svc))
	pod, err = client.ComputeLinkedPod(ctx, "", "user1", svc)
	check(err)
	fmt.Printf("%s: user1 -> pod %d after draining pod 0\n", label, pod)
	pod, err = client.ComputeLinkedPod(ctx, "", "user2", svc)
	check(err)
	fmt.Printf("%s: user2 -> pod %d\n", label, pod)
	_, err = client.ComputeLinkedPod(ctx, "", "bad}uid", svc)
	var e *statefulroute.Error
	if errors.As(err, &e) {
		fmt.Printf("%s: bad}uid -> %s\n", label, e.Code)
	} else {
		fmt.Printf("%s: bad}uid -> %v\n", label, err)
	}
	check(client.Close())
	check(s0.Stop(ctx))
	check(s1.Stop(ctx))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func main() {
	ctx := context.Background()
	url, svc := os.Args[1], os.Args[2]
	scenario(ctx, "memory", statefulroute.MemoryStore(), svc)
	store, err := statefulroute.Connect(ctx, url)
	check(err)
	scenario(ctx, "redis", store, svc)
}
