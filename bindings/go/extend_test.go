package statefulroute

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

// placeMany places n new users ("<prefix><i>") and counts them per pod.
func placeMany(t *testing.T, c *ClientDriver, svc, prefix string, n int) map[int]int {
	t.Helper()
	out := map[int]int{}
	for i := range n {
		out[must(c.ComputeLinkedPod(bg, ns, fmt.Sprintf("%s%d", prefix, i), svc))(t)]++
	}
	return out
}

func clientWith(t *testing.T, s *Store, p PlacementSetting) *ClientDriver {
	t.Helper()
	cfg := fastConfig()
	cfg.Placement = p
	c, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGoPlacementPolicyDecides(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		for i := range 3 {
			startPod(t, s, "ext", i, 0)
		}
		var mu sync.Mutex
		var seen []PlacementRequest
		var bad []string
		highest := PlacementPolicy(func(cands []Candidate, req PlacementRequest) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, req)
			for i, c := range cands {
				if c.PodIndex != i || c.RoutingState != Ready || c.Weight != 100 || c.Load != 0 || c.Age < 0 {
					bad = append(bad, fmt.Sprintf("%+v", c))
				}
			}
			return len(cands) - 1, nil
		})
		c := clientWith(t, s, highest)
		if got := placeMany(t, c, "ext", "hi", 20); got[2] != 20 {
			t.Fatalf("every new user on the highest pod: %v", got)
		}
		if len(bad) > 0 {
			t.Fatalf("candidates: %v", bad)
		}
		if len(seen) != 20 || seen[0].Namespace != ns || seen[0].UID != "hi0" || seen[0].Service != "ext" ||
			seen[19].Sequence <= seen[0].Sequence {
			t.Fatalf("requests: %+v", seen)
		}
		// Known users never reach the policy.
		placeMany(t, c, "ext", "hi", 20)
		if len(seen) != 20 {
			t.Fatalf("the policy ran for a known user: %d calls", len(seen))
		}

		// Per service, on another driver with the default config.
		lowest := PlacementPolicy(func(cands []Candidate, _ PlacementRequest) (int, error) { return 0, nil })
		c2 := newClient(t, s)
		if err := c2.SetServicePlacement("ext", lowest); err != nil {
			t.Fatal(err)
		}
		if got := placeMany(t, c2, "ext", "lo", 20); got[0] != 20 {
			t.Fatalf("every new user on pod 0: %v", got)
		}
	})
}

func TestFailingGoPolicyIsATypedErrorAndWritesNothing(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		startPod(t, s, "ext", 0, 0)
		startPod(t, s, "ext", 1, 0)
		c := newClient(t, s)
		cases := []struct {
			name   string
			policy PlacementPolicy
			code   Code
			text   string
		}{
			{"error", func([]Candidate, PlacementRequest) (int, error) { return 0, errors.New("policy refused") },
				ErrInternal, "INTERNAL: placement callback failed: policy refused"},
			{"panic", func([]Candidate, PlacementRequest) (int, error) { panic("boom") },
				ErrInternal, "INTERNAL: placement callback failed: panic: boom"},
			{"nil map panic", func([]Candidate, PlacementRequest) (int, error) {
				var m map[string]int
				m["x"] = 1
				return 0, nil
			}, ErrInternal, "panic: assignment to entry in nil map"},
			{"error with a code", func([]Candidate, PlacementRequest) (int, error) {
				return 0, fmt.Errorf("full: %w", ErrNoAvailablePod)
			}, ErrNoAvailablePod, "NO_AVAILABLE_POD: placement callback failed: full: NO_AVAILABLE_POD"},
			{"out of range", func(c []Candidate, _ PlacementRequest) (int, error) { return len(c), nil },
				ErrInternal, "chose index 2 of 2"},
			{"negative", func([]Candidate, PlacementRequest) (int, error) { return -7, nil },
				ErrInternal, "chose -7"},
			{"refuse", func([]Candidate, PlacementRequest) (int, error) { return -1, nil },
				ErrNoAvailablePod, "NO_AVAILABLE_POD"},
		}
		for _, tc := range cases {
			if err := c.SetServicePlacement("ext", tc.policy); err != nil {
				t.Fatal(err)
			}
			uid := "victim-" + strings.ReplaceAll(tc.name, " ", "-")
			pod, err := c.ComputeLinkedPod(bg, ns, uid, "ext")
			var e *Error
			if pod != -1 || !errors.As(err, &e) || e.Code != tc.code || !errors.Is(err, tc.code) ||
				!strings.Contains(e.Message, tc.text) {
				t.Errorf("%s: pod %d, err %v", tc.name, pod, err)
			}
			if _, ok := must2(t)(s.GetLink(bg, ns, uid, "ext")); ok {
				t.Errorf("%s: a link was written", tc.name)
			}
		}
		// The driver still works once the policy does.
		if err := c.SetServicePlacement("ext", PlacementRoundRobin); err != nil {
			t.Fatal(err)
		}
		must(c.ComputeLinkedPod(bg, ns, "victim-error", "ext"))(t)
		if err := c.SetServicePlacement("ext", PlacementPolicy(nil)); !isCode(err, ErrInvalidArgument) {
			t.Errorf("nil policy: %v", err)
		}
		if err := c.SetServicePlacement("ext", nil); !isCode(err, ErrInvalidArgument) {
			t.Errorf("nil setting: %v", err)
		}
	})
}

func TestGoPolicyFromManyGoroutines(t *testing.T) {
	s := MemoryStore()
	for i := range 4 {
		startPod(t, s, "ext", i, 0)
	}
	var mu sync.Mutex
	calls := 0
	c := clientWith(t, s, PlacementPolicy(func(cands []Candidate, req PlacementRequest) (int, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return int(req.Sequence % uint64(len(cands))), nil
	}))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, err := c.ComputeLinkedPod(bg, ns, fmt.Sprintf("g%d-%d", g, i), "ext"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if calls != 64*20 {
		t.Fatalf("%d policy calls for %d new users", calls, 64*20)
	}
}

func TestBuiltInPlacementByName(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		pods := make([]*ServerDriver, 3)
		for i := range 3 {
			pods[i] = startPod(t, s, "ext", i, 0)
		}
		c := newClient(t, s)
		if err := c.SetServicePlacement("ext", PlacementRoundRobin); err != nil {
			t.Fatal(err)
		}
		var got []int
		for i := range 6 {
			got = append(got, must(c.ComputeLinkedPod(bg, ns, fmt.Sprintf("rr%d", i), "ext"))(t))
		}
		if fmt.Sprint(got) != "[0 1 2 0 1 2]" {
			t.Fatalf("round robin: %v", got)
		}

		// Rendezvous: two gateways agree on every new user (the link removed in between).
		if err := c.SetServicePlacement("ext", Rendezvous{LoadFactor: 1.5}); err != nil {
			t.Fatal(err)
		}
		other := clientWith(t, s, PlacementRendezvous)
		for i := range 20 {
			uid := fmt.Sprintf("hrw%d", i)
			a := must(c.ComputeLinkedPod(bg, ns, uid, "ext"))(t)
			must(s.RemoveLink(bg, ns, uid, "ext", 0))(t)
			if b := must(other.ComputeLinkedPod(bg, ns, uid, "ext"))(t); a != b {
				t.Fatalf("%s: %d vs %d", uid, a, b)
			}
		}
		if err := c.SetServicePlacement("ext", Rendezvous{LoadFactor: 0.5}); !isCode(err, ErrInvalidConfig) {
			t.Errorf("load factor 0.5: %v", err)
		}
		// Names and the load-factor rule are the core's (Placement::from_setting).
		if err := c.SetServicePlacement("ext", Placement("nope")); !isCode(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "is not one of p2c") {
			t.Errorf("unknown name: %v", err)
		}
		cfg := fastConfig()
		cfg.Placement = Rendezvous{LoadFactor: 0.5}
		if _, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg); !isCode(err, ErrInvalidConfig) {
			t.Errorf("config load factor 0.5: %v", err)
		}
		cfg.Placement, cfg.PlacementLoadFactor = PlacementP2C, 2
		if _, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg); !isCode(err, ErrInvalidConfig) {
			t.Errorf("config load factor for p2c: %v", err)
		}
		cfg.Placement, cfg.PlacementLoadFactor = Placement("nope"), 0
		if _, err := NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg); !isCode(err, ErrInvalidConfig) {
			t.Errorf("config placement nope: %v", err)
		}
		cfg.Placement, cfg.PlacementLoadFactor = PlacementRendezvous, 1.5
		must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg))(t)

		// Weighted: weights 0, 0, 100 send every new user to pod 2.
		if w := pods[0].GetWeight(); w != 100 {
			t.Fatalf("default weight %d", w)
		}
		for _, p := range pods[:2] {
			if err := p.SetWeight(bg, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := pods[0].SetWeight(bg, -1); !isCode(err, ErrInvalidArgument) {
			t.Errorf("weight -1: %v", err)
		}
		w := clientWith(t, s, PlacementWeighted)
		if got := placeMany(t, w, "ext", "w", 30); got[2] != 30 {
			t.Fatalf("weighted: %v", got)
		}
	})
}

func TestGoLoadCalculatorMovesNewUsers(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		sessions := LoadCalculator(func(in LoadInput) (int, error) {
			v, ok := in.Signals["sessions"]
			switch {
			case !ok:
				return in.Load, nil
			case v < 0:
				return 0, errors.New("negative sessions")
			case v > 1e6:
				panic("too many sessions")
			}
			return int(v * 10), nil
		})
		p0 := startPod(t, s, "extload", 0, 0)
		p1 := startPod(t, s, "extload", 1, 0)
		for _, p := range []*ServerDriver{p0, p1} {
			if err := p.SetLoadCalculator(sessions); err != nil {
				t.Fatal(err)
			}
		}
		// Pod 0 reports 100 sessions: load 1000, outside the load range of pod 1 (load 0).
		if err := p0.SetLoadSignal("sessions", 100); err != nil {
			t.Fatal(err)
		}
		if l := p0.WeightedLoad(); l != 1000 {
			t.Fatalf("weighted load %d", l)
		}
		if err := p0.SetRoutingState(bg, Ready); err != nil { // publish now
			t.Fatal(err)
		}
		c := newClient(t, s)
		if got := placeMany(t, c, "extload", "u", 30); got[1] != 30 {
			t.Fatalf("every new user on pod 1: %v", got)
		}
		states := must(c.PodStates(bg, "extload"))(t)
		if len(states) != 2 || states[0].Load != 1000 {
			t.Fatalf("published: %+v", states)
		}

		// Errors and panics: typed through TryWeightedLoad, the formula (load 0) published.
		for _, tc := range []struct {
			v    float64
			text string
		}{{-1, "INTERNAL: load callback failed: negative sessions"}, {2e6, "INTERNAL: load callback failed: panic: too many sessions"}} {
			if err := p0.SetLoadSignal("sessions", tc.v); err != nil {
				t.Fatal(err)
			}
			l, err := p0.TryWeightedLoad()
			var e *Error
			if l != -1 || !errors.As(err, &e) || e.Code != ErrInternal || e.Message != tc.text {
				t.Errorf("sessions %v: %d, %v", tc.v, l, err)
			}
			if l := p0.WeightedLoad(); l != 0 {
				t.Errorf("fallback load %d", l)
			}
		}
		if err := p0.SetLoadSignal("sessions", math.NaN()); !isCode(err, ErrInvalidArgument) {
			t.Errorf("NaN: %v", err)
		}
		if err := p0.SetLoadSignal("bad name!", 1); !isCode(err, ErrInvalidArgument) {
			t.Errorf("bad name: %v", err)
		}
		// nil restores SPEC's formula (load only: CpuFactor is 0).
		if err := p0.SetLoadState(bg, 42); err != nil {
			t.Fatal(err)
		}
		if err := p0.SetLoadCalculator(nil); err != nil {
			t.Fatal(err)
		}
		if l := must(p0.TryWeightedLoad())(t); l != 42 {
			t.Fatalf("formula load %d", l)
		}
	})
}
