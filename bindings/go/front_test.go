package statefulroute

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// The front cache of ComputeLinkedPod (README, "Front caches"): a repeated hit is answered in
// Go, and every change that can make it wrong reaches it as fast as it reaches the core's cache
// (a move or a removal elsewhere, a local write, a pod's stop, Close); every hit it answers is
// counted in the metrics. Each test first shows that the front cache holds the answer, so the
// check after the change is not a core hit in disguise.

// fronted places uid, then asks until the front cache answers it; returns the pod.
func fronted(t *testing.T, c *ClientDriver, uid, svc string) int {
	t.Helper()
	pod := must(c.ComputeLinkedPod(bg, ns, uid, svc))(t)
	if again := must(c.ComputeLinkedPod(bg, ns, uid, svc))(t); again != pod {
		t.Fatalf("%s: %d then %d", uid, pod, again)
	}
	got, ok := c.front.get(ns, uid, svc)
	if !ok || got != pod {
		t.Fatalf("%s: the front cache holds %d, %v; want %d", uid, got, ok, pod)
	}
	return pod
}

func TestFrontCacheFollowsMovesAndRemovalsElsewhere(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			s := freshStore(t, kind)
			p0 := startPod(t, s, "room", 0, 0)
			startPod(t, s, "room", 1, 0)
			c := newClient(t, s)
			pod := fronted(t, c, "u1", "room")
			to := 1 - pod
			must(p0.SetLinkedPod(bg, ns, "u1", "room", to))(t)
			if took, ok := until(followWithin, answers(c, "u1", "room", to)); !ok {
				t.Fatalf("the move did not reach the front cache in %v", took)
			}
			fronted(t, c, "u1", "room")
			must(p0.RemoveLinkedPod(bg, ns, "u1", "room", 0))(t)
			if took, ok := until(followWithin, func() bool { _, ok := c.front.get(ns, "u1", "room"); return !ok }); !ok {
				t.Fatalf("the removal did not void the front entry in %v", took)
			}
		})
	}
}

func TestFrontCacheFollowsLocalWritesStopsAndClose(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		pods := []*ServerDriver{startPod(t, s, "room", 0, 0), startPod(t, s, "room", 1, 0)}
		c := newClient(t, s)
		pod := fronted(t, c, "u1", "room")
		if err := c.SetCache(bg, ns, "u1", "room", 1-pod); err != nil {
			t.Fatal(err)
		}
		if got := must(c.ComputeLinkedPod(bg, ns, "u1", "room"))(t); got != 1-pod {
			t.Fatalf("after SetCache: %d, want %d", got, 1-pod)
		}
		serving := fronted(t, c, "u2", "room")
		if err := pods[serving].Stop(bg); err != nil {
			t.Fatal(err)
		}
		if err := c.RefreshService(bg, "room"); err != nil {
			t.Fatal(err)
		}
		if got := must(c.ComputeLinkedPod(bg, ns, "u2", "room"))(t); got != 1-serving {
			t.Fatalf("after the stop: %d, want %d", got, 1-serving)
		}
		fronted(t, c, "u3", "room")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ComputeLinkedPod(bg, ns, "u3", "room"); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v, want ErrClosed", err)
		}
	})
}

func TestFrontCacheHitsAreCountedOnceFromManyGoroutines(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		startPod(t, s, "room", 0, 0)
		c := newClient(t, s)
		fronted(t, c, "u1", "room") // a placement, a core hit, a front hit
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 1000; i++ {
					if _, err := c.ComputeLinkedPod(bg, ns, "u1", "room"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		m := must(c.Metrics())(t)
		if hits, _ := m.Value("stateful_route_computes_total", "service", "room", "result", "hit"); hits != 8002 {
			t.Fatalf("hits %v, want 8002", hits)
		}
		if _, err := c.ComputeLinkedPod(bg, ns, "u1", "room"); err != nil {
			t.Fatal(err)
		}
		text := must(c.MetricsText())(t)
		if want := `stateful_route_computes_total{service="room",result="hit"} 8003`; !containsLine(text, want) {
			t.Fatalf("metrics text lacks %s", want)
		}
		for _, bad := range [][3]string{{"elsewhere", "u1", "room"}, {ns, "", "room"}, {ns, "u1", "no such!"}} {
			if _, err := c.ComputeLinkedPod(bg, bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalidArgument) && !errors.Is(err, ErrNamespaceNotLocal) {
				t.Fatalf("%q: %v", bad, err)
			}
		}
	})
}

func TestFrontCacheIsBoundedByTheCacheCapacity(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		startPod(t, s, "room", 0, 0)
		for _, capacity := range []int64{8, -1} {
			cfg := fastConfig()
			cfg.CacheCapacity = capacity
			c := must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, cfg))(t)
			if err := c.Init(); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 40; i++ {
				uid := fmt.Sprintf("u%d", i)
				for j := 0; j < 2; j++ {
					if _, err := c.ComputeLinkedPod(bg, ns, uid, "room"); err != nil {
						t.Fatal(err)
					}
				}
				if n := c.front.size(); n > max(int(capacity), 0) {
					t.Fatalf("capacity %d: %d entries", capacity, n)
				}
			}
			c.Close()
		}
	})
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
