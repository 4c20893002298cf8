package statefulroute

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// Every float field of BaseConfig with the edge values of a float64 (issue item 8): each value
// is either rejected with ErrInvalidConfig naming the field, or accepted, and then a server
// driver with that config starts on the memory store, publishes its pod state (read back
// through a client) and keeps publishing, and a client driver with that config routes a new
// user. Which values are accepted is pinned per field (Go's conventions for the newer fields:
// 0 = the default, a negative value turns the feature off where the field says so).
func TestConfigEdgeValues(t *testing.T) {
	negZero := math.Copysign(0, -1)
	values := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 5e-324, 1e-300, negZero, 0, 1e300,
		math.MaxFloat64, -1, 0.5}
	fields := []struct {
		name    string // as the library's message names it
		set     func(*BaseConfig, float64)
		accepts func(float64) bool
	}{
		{"service_state_update_period_seconds", func(c *BaseConfig, v float64) { c.ServiceStateUpdatePeriodSeconds = v },
			func(v float64) bool { return v >= 0.001 && v <= 86400 }},
		{"cpu_factor", func(c *BaseConfig, v float64) { c.CpuFactor = v },
			func(v float64) bool { return v >= 0 && v <= 1 }},
		// 0 = 3 periods; anything else must be in [0.001, 86400].
		{"stale_after_seconds", func(c *BaseConfig, v float64) { c.StaleAfterSeconds = v },
			func(v float64) bool { return v == 0 || (v >= 0.001 && v <= 86400) }},
		{"drain_seconds", func(c *BaseConfig, v float64) { c.DrainSeconds = v },
			func(v float64) bool { return v >= 0 && v <= 86400 }},
		// 0 = 60; negative = off.
		{"serve_stale_seconds", func(c *BaseConfig, v float64) { c.ServeStaleSeconds = v },
			func(v float64) bool { return v <= 86400 }},
		// 0 = one period; negative = off.
		{"slow_start_seconds", func(c *BaseConfig, v float64) { c.SlowStartSeconds = v },
			func(v float64) bool { return v <= 86400 }},
		// 0 = 1.25; otherwise finite and >= 1.
		{"load_factor", func(c *BaseConfig, v float64) { c.Placement = Rendezvous{LoadFactor: v} },
			func(v float64) bool { return v == 0 || (v >= 1 && !math.IsInf(v, 1)) }},
	}
	if d := DefaultBaseConfig(); d.SlowStartSeconds != 0 || d.StaleAfterSeconds != 0 {
		t.Fatalf("DefaultBaseConfig: SlowStartSeconds %v, StaleAfterSeconds %v; want 0 (the defaults)",
			d.SlowStartSeconds, d.StaleAfterSeconds)
	}
	store := MemoryStore()
	pod := 0
	for _, f := range fields {
		for _, v := range values {
			name := fmt.Sprintf("%s=%v", f.name, v)
			if v == 0 && math.Signbit(v) {
				name = f.name + "=-0"
			}
			t.Run(name, func(t *testing.T) {
				cfg := fastConfig()
				f.set(cfg, v)
				svc := fmt.Sprintf("edge-%d", pod)
				pod++
				server, serr := NewServerDriver(store, ServerInfo{Namespace: ns, ServiceName: svc}, cfg)
				client, cerr := NewClientDriver(store, ServerInfo{Namespace: ns, ServiceName: "gw"}, cfg)
				if !f.accepts(v) { // NaN fails every comparison: rejected
					for who, err := range map[string]error{"server": serr, "client": cerr} {
						var e *Error
						if !errors.As(err, &e) || e.Code != ErrInvalidConfig || !strings.Contains(e.Message, f.name) {
							t.Errorf("%s driver: got %v, want INVALID_CONFIG naming %s", who, err, f.name)
						}
					}
					if server != nil || client != nil {
						t.Errorf("a rejected config made a driver")
					}
					return
				}
				if serr != nil || cerr != nil {
					t.Fatalf("accepted value refused: server %v, client %v", serr, cerr)
				}
				defer client.Close()
				defer server.Close()
				if err := server.SetLoadState(bg, 7); err != nil {
					t.Fatal(err)
				}
				if err := server.Start(bg); err != nil {
					t.Fatal(err)
				}
				reader := newClient(t, store)
				first := waitPodState(t, reader, svc, 0)
				// weighted load = round(CpuFactor × CPU% + (1 − CpuFactor) × 7)
				lo, hi := 7, 7
				if cfg.CpuFactor >= 0.01 {
					lo, hi = int(math.Floor((1-cfg.CpuFactor)*7)), int(math.Ceil(cfg.CpuFactor*100+7))
				}
				if first.Load < lo || first.Load > hi || first.RoutingState != Ready {
					t.Fatalf("published %+v, want load in [%d, %d] and READY", first, lo, hi)
				}
				// It keeps publishing (every accepted period is at most 0.5 s).
				if later := waitPodState(t, reader, svc, first.UpdateMs); later.UpdateMs <= first.UpdateMs {
					t.Fatalf("no second publish: %+v then %+v", first, later)
				}
				if err := client.Init(); err != nil {
					t.Fatal(err)
				}
				if p, err := client.ComputeLinkedPod(bg, ns, "edge-user", svc); err != nil || p != 0 {
					t.Fatalf("compute with the config: %d, %v", p, err)
				}
			})
		}
	}
}

// waitPodState polls (bounded, 5 s) until reader sees pod 0 of svc published after afterMs.
func waitPodState(t *testing.T, reader *ClientDriver, svc string, afterMs uint64) PodState {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := reader.RefreshService(bg, svc); err != nil {
			t.Fatal(err)
		}
		states, err := reader.PodStates(bg, svc)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) == 1 && states[0].PodIndex == 0 && states[0].UpdateMs > afterMs {
			return states[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pod state of %s published after %d within 5 s: %+v", svc, afterMs, states)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
