package statefulroute

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Metrics and ExplainPlacement (README "Metrics") after a known sequence, on both stores: the
// numbers core/tests/metrics.rs checks, through the C API.

// metricsConfig is round robin on load alone, without slow start, so that the sequence's
// placements are known.
func metricsConfig() *BaseConfig {
	c := fastConfig()
	c.Placement = PlacementRoundRobin
	c.CpuFactor = 0
	c.SlowStartSeconds = -1
	return c
}

func startPodWith(t *testing.T, s *Store, cfg *BaseConfig, pod, load int) *ServerDriver {
	t.Helper()
	d := must(NewServerDriver(s, ServerInfo{Namespace: ns, ServiceName: "room", PodIndex: pod}, cfg))(t)
	if err := d.SetLoadState(bg, load); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(bg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func gatewayWith(t *testing.T, s *Store, cfg *BaseConfig) *ClientDriver {
	t.Helper()
	c := must(NewClientDriver(s, ServerInfo{Namespace: ns, ServiceName: "gateway"}, cfg))(t)
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// knownSequence: 4 new users (round robin over pods 0 and 1), 6 hits, one NO_AVAILABLE_POD and
// one hit through ComputeCached: hits 7, misses 4, placements 2 and 2.
func knownSequence(t *testing.T, c *ClientDriver) {
	t.Helper()
	on := map[int]int{}
	for i := range 4 {
		on[must(c.ComputeLinkedPod(bg, "", fmt.Sprintf("u%d", i), "room"))(t)]++
	}
	if on[0] != 2 || on[1] != 2 {
		t.Fatalf("round robin placed %v", on)
	}
	for i := range 6 {
		must(c.ComputeLinkedPod(bg, "", fmt.Sprintf("u%d", i%4), "room"))(t)
	}
	if _, err := c.ComputeLinkedPod(bg, "", "u0", "empty"); !errors.Is(err, ErrNoAvailablePod) {
		t.Fatalf("a service nobody serves: %v", err)
	}
	if pod := must(c.ComputeCached(bg, "", "u0", "room"))(t); pod < 0 {
		t.Fatal("u0 is cached")
	}
}

// wantValue fails t unless m has the series with exactly these labels and value want.
func wantValue(t *testing.T, m Metrics, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := m.Value(name, labels...)
	if !ok || got != want {
		t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, ok, want)
	}
}

func TestMetricsCountWhatATestDid(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		cfg := metricsConfig()
		startPodWith(t, s, cfg, 0, 10)
		p1 := startPodWith(t, s, cfg, 1, 10)
		c := gatewayWith(t, s, cfg)
		knownSequence(t, c)

		m := must(c.Metrics())(t)
		const computes = "stateful_route_computes_total"
		wantValue(t, m, 7, computes, "service", "room", "result", "hit")
		wantValue(t, m, 4, computes, "result", "miss", "service", "room") // any order
		wantValue(t, m, 0, computes, "service", "room", "result", "stale")
		wantValue(t, m, 0, computes, "service", "room", "result", "error")
		wantValue(t, m, 1, computes, "service", "empty", "result", "error")
		wantValue(t, m, 2, "stateful_route_placements_total", "service", "room", "pod", "0")
		wantValue(t, m, 2, "stateful_route_placements_total", "service", "room", "pod", "1")
		wantValue(t, m, 1, "stateful_route_errors_total", "kind", "NO_AVAILABLE_POD")
		wantValue(t, m, 4, "stateful_route_cache_entries")
		wantValue(t, m, 2, "stateful_route_pods", "service", "room", "state", "routable")
		wantValue(t, m, 10, "stateful_route_pod_load", "service", "room", "pod", "1")
		wantValue(t, m, 4, "stateful_route_store_call_seconds_count", "op", "set_link_if_absent")
		wantValue(t, m, 4, "stateful_route_store_call_seconds_bucket", "op", "set_link_if_absent", "le", "+Inf")
		wantValue(t, m, 1, "stateful_route_event_stream_up")
		if _, ok := m.Value("stateful_route_placements_total", "service", "room", "pod", "2"); ok {
			t.Error("no placement on pod 2")
		}
		if _, ok := m.Value(computes, "service", "room"); ok {
			t.Error("Value matches the labels exactly, not a subset")
		}
		if _, ok := m.Value(computes, "service"); ok {
			t.Error("an odd number of label strings matches nothing")
		}
		for _, smp := range m.Samples {
			f, ok := FamilyOf(smp.Name)
			if !ok {
				t.Errorf("%s: no family", smp.Name)
				continue
			}
			for i, l := range smp.Labels {
				if strings.HasPrefix(l.Value, "u") && len(l.Value) == 2 {
					t.Errorf("%s: a uid as a label: %v", smp.Name, smp.Labels)
				}
				if i < len(f.Labels) && l.Name != f.Labels[i] {
					t.Errorf("%s: labels %v, the family's %v", smp.Name, smp.Labels, f.Labels)
				}
			}
		}

		text := must(c.MetricsText())(t)
		for _, line := range []string{
			`stateful_route_computes_total{service="room",result="hit"} 7`,
			`stateful_route_computes_total{service="room",result="miss"} 4`,
			`stateful_route_placements_total{service="room",pod="1"} 2`,
			`stateful_route_errors_total{kind="NO_AVAILABLE_POD"} 1`,
			`stateful_route_pods{service="room",state="routable"} 2`,
			`stateful_route_store_call_seconds_count{op="set_link_if_absent"} 4`,
			`stateful_route_event_stream_up 1`,
			`# TYPE stateful_route_store_call_seconds histogram`,
			`# TYPE stateful_route_computes_total counter`,
		} {
			if !strings.Contains("\n"+text, "\n"+line+"\n") {
				t.Errorf("no line %q in\n%s", line, text)
			}
		}
		if strings.Contains(text, `"u0"`) {
			t.Error("no uid in any label")
		}

		// A drain shows as a draining pod once the gateway sees it.
		if err := p1.SetRoutingState(bg, DenyNewCall); err != nil {
			t.Fatal(err)
		}
		if err := c.RefreshService(bg, "room"); err != nil {
			t.Fatal(err)
		}
		m = must(c.Metrics())(t)
		wantValue(t, m, 1, "stateful_route_pods", "service", "room", "state", "draining")
		wantValue(t, m, 1, "stateful_route_pods", "service", "room", "state", "routable")

		// After Close: the last figures.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wantValue(t, must(c.Metrics())(t), 7, computes, "service", "room", "result", "hit")
	})
}

func TestDisableMetricsCountsNothingButReportsGauges(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		cfg := metricsConfig()
		startPodWith(t, s, cfg, 0, 10)
		off := *cfg
		off.DisableMetrics = true
		c := gatewayWith(t, s, &off)
		for range 2 {
			if pod := must(c.ComputeLinkedPod(bg, "", "u", "room"))(t); pod != 0 {
				t.Fatalf("pod %d", pod)
			}
		}
		m := must(c.Metrics())(t)
		wantValue(t, m, 0, "stateful_route_computes_total", "service", "room", "result", "hit")
		wantValue(t, m, 0, "stateful_route_computes_total", "service", "room", "result", "miss")
		if _, ok := m.Value("stateful_route_placements_total", "service", "room", "pod", "0"); ok {
			t.Error("placements counted with DisableMetrics")
		}
		wantValue(t, m, 1, "stateful_route_pods", "service", "room", "state", "routable")
		wantValue(t, m, 1, "stateful_route_cache_entries")
	})
}

func TestMetricFamilies(t *testing.T) {
	fams := MetricFamilies()
	if len(fams) < 15 {
		t.Fatalf("%d families", len(fams))
	}
	byName := map[string]MetricFamily{}
	for _, f := range fams {
		if f.Name == "" || f.Help == "" || (f.Kind != MetricCounter && f.Kind != MetricGauge && f.Kind != MetricHistogram) {
			t.Errorf("%+v", f)
		}
		byName[f.Name] = f
	}
	if f := byName["stateful_route_computes_total"]; f.Kind != MetricCounter || strings.Join(f.Labels, ",") != "service,result" {
		t.Errorf("%+v", f)
	}
	if f := byName["stateful_route_cache_entries"]; f.Kind != MetricGauge || len(f.Labels) != 0 {
		t.Errorf("%+v", f)
	}
	if f := byName["stateful_route_store_call_seconds"]; f.Kind != MetricHistogram || strings.Join(f.Labels, ",") != "op" {
		t.Errorf("%+v", f)
	}
	for _, series := range []string{"stateful_route_store_call_seconds_bucket", "stateful_route_store_call_seconds_sum", "stateful_route_store_call_seconds_count"} {
		if f, ok := FamilyOf(series); !ok || f.Name != "stateful_route_store_call_seconds" {
			t.Errorf("FamilyOf(%s) = %+v, %v", series, f, ok)
		}
	}
	for _, series := range []string{"nope", "", "stateful_route_computes_total_bucket", "\xff"} {
		if f, ok := FamilyOf(series); ok {
			t.Errorf("FamilyOf(%q) = %+v", series, f)
		}
	}
	// A copy: changing it changes nothing.
	fams[0].Labels = append(fams[0].Labels[:0], "changed")
	fams[0].Name = "changed"
	if again := MetricFamilies(); again[0].Name == "changed" || (len(again[0].Labels) > 0 && again[0].Labels[0] == "changed") {
		t.Error("MetricFamilies returned the package's own table")
	}
}

func TestExplainPlacement(t *testing.T) {
	bothStores(t, func(t *testing.T, s *Store) {
		cfg := metricsConfig()
		cfg.LoadRange = 100
		startPodWith(t, s, cfg, 0, 10)
		startPodWith(t, s, cfg, 1, 500)
		p2 := startPodWith(t, s, cfg, 2, 20)
		if err := p2.SetRoutingState(bg, DenyNewCall); err != nil {
			t.Fatal(err)
		}
		c := gatewayWith(t, s, cfg)

		e := must(c.ExplainPlacement(bg, "", "newcomer", "room"))(t)
		if e.Namespace != ns || e.UID != "newcomer" || e.Service != "room" || e.Link != nil || e.CachedPod != -1 {
			t.Errorf("%+v", e)
		}
		if e.Policy != "round_robin" || e.LoadFactor != 0 || e.LoadRange != 100 {
			t.Errorf("policy %q, load factor %v, load range %d", e.Policy, e.LoadFactor, e.LoadRange)
		}
		var verdicts []string
		for i, p := range e.Pods {
			verdicts = append(verdicts, fmt.Sprintf("%d:%s", p.PodIndex, p.Verdict))
			if !p.Alive || p.Placed != 0 || p.Weight != 100 || p.Age < 0 || p.Age > 5*time.Second || p.Reason == "" {
				t.Errorf("pod %d: %+v", i, p)
			}
		}
		if got := strings.Join(verdicts, " "); got != "0:kept 1:over_load_range 2:not_routable" {
			t.Errorf("verdicts %s", got)
		}
		if len(e.Pods) == 3 {
			if p := e.Pods[1]; p.Load != 500 || p.RoutingState != Ready || !strings.Contains(p.Reason, "load 500") {
				t.Errorf("pod 1: %+v", p)
			}
			if p := e.Pods[2]; p.Load != 20 || p.RoutingState != DenyNewCall {
				t.Errorf("pod 2: %+v", p)
			}
		}
		if e.WouldPlaceOn != 0 || e.Answer != 0 || e.Summary == "" || e.SnapshotAge < 0 || e.SnapshotAge > time.Minute {
			t.Errorf("would place on %d, answer %d, summary %q, snapshot age %v", e.WouldPlaceOn, e.Answer, e.Summary, e.SnapshotAge)
		}
		// A dry run: nothing written, nothing counted.
		if _, ok := must2(t)(s.GetLink(bg, ns, "newcomer", "room")); ok {
			t.Error("explain wrote a link")
		}
		m := must(c.Metrics())(t)
		if _, ok := m.Value("stateful_route_placements_total", "service", "room", "pod", "0"); ok {
			t.Error("explain counted a placement")
		}
		wantValue(t, m, 0, "stateful_route_computes_total", "service", "room", "result", "miss")

		// A persistent link: shown, and the answer.
		must(s.SetLink(bg, ns, "linked", "room", 2, -1))(t)
		e = must(c.ExplainPlacement(bg, ns, "linked", "room"))(t)
		if l := e.Link; l == nil || l.PodIndex != 2 || !l.Persistent || !l.PodAlive || l.TTL != 0 {
			t.Errorf("link %+v", l)
		}
		if e.Answer != 2 || !strings.Contains(e.Summary, "persistent") {
			t.Errorf("answer %d, summary %q", e.Answer, e.Summary)
		}
		// A temporary link this gateway cached.
		if pod := must(c.ComputeLinkedPod(bg, ns, "temp", "room"))(t); pod != 0 {
			t.Fatalf("pod %d", pod)
		}
		e = must(c.ExplainPlacement(bg, ns, "temp", "room"))(t)
		if l := e.Link; l == nil || l.PodIndex != 0 || l.Persistent || !l.PodAlive || l.TTL <= 0 || l.TTL > 300*time.Second {
			t.Errorf("link %+v", l)
		}
		if e.CachedPod != 0 || e.Answer != 0 {
			t.Errorf("cached %d, answer %d", e.CachedPod, e.Answer)
		}

		// Bad input: a typed error.
		for _, bad := range [][3]string{{ns, "", "room"}, {ns, "\xff", "room"}, {ns, "u", "a:b"}} {
			if _, err := c.ExplainPlacement(bg, bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%q: %v", bad, err)
			}
		}
		e, err := c.ExplainPlacement(bg, "other", "u", "room")
		if !errors.Is(err, ErrNamespaceNotLocal) || e.Answer != -1 || e.WouldPlaceOn != -1 || e.CachedPod != -1 {
			t.Errorf("%+v, %v", e, err)
		}
		ctx, cancel := context.WithCancel(bg)
		cancel()
		if _, err := c.ExplainPlacement(ctx, ns, "u", "room"); err == nil {
			t.Error("a done context")
		}
		c.Close()
		if _, err := c.ExplainPlacement(bg, ns, "u", "room"); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	})
}

// setEnv sets exactly the Kubernetes variables given ("" = unset) for the rest of the test.
func setEnv(t *testing.T, namespace, podName, hostname, service string) {
	t.Helper()
	for k, v := range map[string]string{"POD_NAMESPACE": namespace, "POD_NAME": podName, "HOSTNAME": hostname, "STATEFUL_ROUTE_SERVICE": service} {
		t.Setenv(k, v) // restored after the test
		if v == "" {
			os.Unsetenv(k)
		}
	}
}

func TestServerInfoFromEnv(t *testing.T) {
	setEnv(t, "games", "room-12", "", "")
	if i := must(ServerInfoFromEnv(""))(t); i != (ServerInfo{Namespace: "games", ServiceName: "room", PodIndex: 12}) {
		t.Errorf("%+v", i)
	}
	if i := must(ServerInfoFromEnv("chat"))(t); i != (ServerInfo{Namespace: "games", ServiceName: "chat", PodIndex: 12}) {
		t.Errorf("the argument first: %+v", i)
	}
	setEnv(t, "games", "", "my-room-3", "lobby")
	i := must(ServerInfoFromEnv(""))(t)
	if i != (ServerInfo{Namespace: "games", ServiceName: "lobby", PodIndex: 3}) {
		t.Errorf("HOSTNAME, STATEFUL_ROUTE_SERVICE: %+v", i)
	}
	// What it derived makes a driver.
	if _, err := NewServerDriver(MemoryStore(), i, fastConfig()); err != nil {
		t.Error(err)
	}
	for _, bad := range []struct{ namespace, podName, hostname, field string }{
		{"games", "", "", "POD_NAME"},
		{"games", "room", "", "POD_NAME"},
		{"games", "", "room-x", "HOSTNAME"},
		{"games", "room-007", "", "POD_NAME"},
		{"Bad_NS", "room-1", "", "POD_NAMESPACE"},
	} {
		setEnv(t, bad.namespace, bad.podName, bad.hostname, "")
		i, err := ServerInfoFromEnv("")
		var e *Error
		if !errors.As(err, &e) || e.Code != ErrInvalidConfig || !strings.Contains(e.Message, bad.field) || i != (ServerInfo{}) {
			t.Errorf("%+v: %+v, %v", bad, i, err)
		}
	}
	// No POD_NAMESPACE: the service-account file, which outside Kubernetes is not there.
	setEnv(t, "", "room-1", "", "")
	i, err := ServerInfoFromEnv("")
	if _, statErr := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); statErr == nil {
		if err != nil || i.PodIndex != 1 {
			t.Errorf("%+v, %v", i, err)
		}
	} else if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "POD_NAMESPACE") {
		t.Errorf("%+v, %v", i, err)
	}
	setEnv(t, "games", "room-1", "", "")
	if _, err := ServerInfoFromEnv("\xff"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if _, err := ServerInfoFromEnv("a:b"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a bad service: %v", err)
	}
}
