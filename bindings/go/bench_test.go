//go:build srbench

package statefulroute

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The cost of crossing into C at all: a cgo call to a function that does nothing.
func BenchmarkCgoNoop(b *testing.B) {
	for b.Loop() {
		cgoNoop()
	}
}

func hitClient(b *testing.B) *ClientDriver {
	s := MemoryStore()
	startPod(b, s, "room", 0, 0)
	c := newClient(b, s)
	if _, err := c.ComputeLinkedPod(bg, ns, "user123", "room"); err != nil {
		b.Fatal(err)
	}
	return c
}

// ComputeLinkedPod on a cache hit, through cgo.
func BenchmarkComputeLinkedPodCacheHit(b *testing.B) {
	c := hitClient(b)
	for b.Loop() {
		if _, err := c.ComputeLinkedPod(bg, ns, "user123", "room"); err != nil {
			b.Fatal(err)
		}
	}
}

// The same hit through the C ABI from a C loop (no cgo per call): the core's hit cost plus
// the C ABI's argument checks.
func BenchmarkComputeLinkedPodCacheHitInC(b *testing.B) {
	c := hitClient(b)
	b.ResetTimer()
	if computeHitsInC(c, "user123", "room", b.N) < 0 {
		b.Fatal("a compute failed")
	}
}

// Cache hits from all Ps at once (one shared driver).
func BenchmarkComputeLinkedPodCacheHitParallel(b *testing.B) {
	c := hitClient(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.ComputeLinkedPod(bg, ns, "user123", "room"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// New users (each op places a user no one has placed) against Redis from 64 goroutines.
func BenchmarkNewUserRedis64(b *testing.B) {
	s := freshStore(b, "redis")
	for i := range 3 {
		startPod(b, s, "room", i, 0)
	}
	c := newClient(b, s)
	if _, err := c.ComputeLinkedPod(bg, ns, "warm", "room"); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			uid := fmt.Sprintf("new-%d", next.Add(1))
			if _, err := c.ComputeLinkedPod(bg, ns, uid, "room"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "users/s")
}

// The cost per placement of a placement callback: new users (each op places a user no one has
// placed) on the memory store, placed by the same round robin built in, as a C callback
// (bench.c) and as a Go func, through three gateways. Each op places one new user with each,
// timed one by one, so that the three share the same moment of a noisy machine; the metrics
// are the mean time of a new user per policy. bench.sh prints the differences to builtin.
func BenchmarkNewUserMemoryPolicy(b *testing.B) {
	s := MemoryStore()
	for i := range 3 {
		startPod(b, s, "room", i, 0)
	}
	goRoundRobin := PlacementPolicy(func(c []Candidate, r PlacementRequest) (int, error) {
		return int(r.Sequence % uint64(len(c))), nil
	})
	names := []string{"builtin", "c-policy", "go-policy"}
	clients := make([]*ClientDriver, len(names))
	for i, name := range names {
		c := newClient(b, s)
		var err error
		switch name {
		case "builtin":
			err = c.SetServicePlacement("room", PlacementRoundRobin)
		case "c-policy":
			if !setCRoundRobin(c, "room") {
				err = fmt.Errorf("setting the C policy failed")
			}
		case "go-policy":
			err = c.SetServicePlacement("room", goRoundRobin)
		}
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.ComputeLinkedPod(bg, ns, "warm-"+name, "room"); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	samples := make([][]time.Duration, len(names))
	n := 0
	for b.Loop() {
		n++
		for k := range clients {
			i := (k + n) % len(clients) // each policy takes each position in turn
			uid := names[i] + "-" + strconv.Itoa(n)
			start := time.Now()
			_, err := clients[i].ComputeLinkedPod(bg, ns, uid, "room")
			samples[i] = append(samples[i], time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	for i, name := range names {
		slices.Sort(samples[i])
		b.ReportMetric(float64(samples[i][len(samples[i])/2].Nanoseconds()), name+"-median-ns/user")
	}
}

// One call of a Go placement policy (round robin over 3 candidates) from C, as the library
// makes it: the C→Go transition, the conversion of candidates and request, the func.
func BenchmarkGoPolicyCallback(b *testing.B) {
	policy := PlacementPolicy(func(c []Candidate, r PlacementRequest) (int, error) {
		return int(r.Sequence % uint64(len(c))), nil
	})
	b.ResetTimer()
	if callGoPolicyFromC(policy, b.N) < 0 {
		b.Fatal("the policy failed")
	}
}
