package statefulroute

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
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
