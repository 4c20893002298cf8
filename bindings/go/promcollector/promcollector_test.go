package promcollector_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	statefulroute "github.com/stateful-route/stateful-route/bindings/go"
	"github.com/stateful-route/stateful-route/bindings/go/promcollector"
)

var bg = context.Background()

// stores runs f on the memory store and on the Redis at $STATEFUL_ROUTE_TEST_REDIS (which
// bindings/go/test.sh sets), each under a fresh key prefix.
func stores(t *testing.T, f func(t *testing.T, s *statefulroute.Store)) {
	url := os.Getenv("STATEFUL_ROUTE_TEST_REDIS")
	if url == "" {
		t.Fatal("STATEFUL_ROUTE_TEST_REDIS is not set (bindings/go/test.sh starts a redis-server)")
	}
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			cfg := statefulroute.StoreConfig{KeyPrefix: fmt.Sprintf("gp%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)}
			if kind == "redis" {
				cfg.URL = url
			}
			s, err := statefulroute.NewStore(bg, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			f(t, s)
		})
	}
}

func config() *statefulroute.BaseConfig {
	c := statefulroute.DefaultBaseConfig()
	c.ServiceStateUpdatePeriodSeconds = 0.2
	c.StaleAfterSeconds = 5
	c.CpuFactor = 0
	c.Placement = statefulroute.PlacementRoundRobin
	c.SlowStartSeconds = -1
	return &c
}

// parse reads a text exposition into families by name.
func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%v in\n%s", err, text)
	}
	return fams
}

// labelKey is a metric's labels as one sorted string.
func labelKey(m *dto.Metric) string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// values is every number of a family by series: counters and gauges by labels, a histogram's
// count, sum and finite buckets.
func values(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		k := labelKey(m)
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			out[k] = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			out[k] = m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			out[k+" count"] = float64(h.GetSampleCount())
			out[k+" sum"] = h.GetSampleSum()
			for _, b := range h.GetBucket() {
				if !math.IsInf(b.GetUpperBound(), +1) {
					out[fmt.Sprintf("%s le=%g", k, b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			}
		default:
			out[k+" type"] = math.NaN()
		}
	}
	return out
}

// ages are the gauges that grow with time; the others stay put once nothing runs.
func ages(name string) bool { return strings.HasSuffix(name, "_age_seconds") }

// reread reports whether an age went backwards across the three readings (a snapshot read
// landed between two of them; otherwise ages only grow).
func reread(before map[string]*dto.MetricFamily, gathered []*dto.MetricFamily, after map[string]*dto.MetricFamily) bool {
	for _, g := range gathered {
		if !ages(g.GetName()) || before[g.GetName()] == nil || after[g.GetName()] == nil {
			continue
		}
		vb, va := values(before[g.GetName()]), values(after[g.GetName()])
		for k, got := range values(g) {
			if b, ok := vb[k]; ok && got < b {
				return true
			}
			if a, ok := va[k]; ok && got > a {
				return true
			}
		}
	}
	return false
}

// same reports whether two readings agree on every series but the ages.
func same(a, b map[string]*dto.MetricFamily) bool {
	if len(a) != len(b) {
		return false
	}
	for name, fa := range a {
		fb, ok := b[name]
		if !ok || ages(name) {
			if !ok {
				return false
			}
			continue
		}
		va, vb := values(fa), values(fb)
		if len(va) != len(vb) {
			return false
		}
		for k, v := range va {
			if w, ok := vb[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

func value(fams map[string]*dto.MetricFamily, name, key string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	v, ok := values(f)[key]
	return v, ok
}

func TestCollectorServesWhatMetricsTextSays(t *testing.T) {
	stores(t, func(t *testing.T, s *statefulroute.Store) {
		cfg := config()
		var pods []*statefulroute.ServerDriver
		for i := range 2 {
			p, err := statefulroute.NewServerDriver(s, statefulroute.ServerInfo{Namespace: "default", ServiceName: "room", PodIndex: i}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.SetLoadState(bg, 10); err != nil {
				t.Fatal(err)
			}
			if err := p.Start(bg); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			pods = append(pods, p)
		}
		c, err := statefulroute.NewClientDriver(s, statefulroute.ServerInfo{Namespace: "default", ServiceName: "gateway"}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Init(); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// 4 new users (round robin), 6 hits, one NO_AVAILABLE_POD.
		for i := range 10 {
			if _, err := c.ComputeLinkedPod(bg, "", fmt.Sprintf("u%d", i%4), "room"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.ComputeLinkedPod(bg, "", "u0", "empty"); !errors.Is(err, statefulroute.ErrNoAvailablePod) {
			t.Fatal(err)
		}

		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(promcollector.New(c))
		running, err := reg.Gather() // the pedantic registry checks every metric it collects
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*dto.MetricFamily{}
		for _, f := range running {
			byName[f.GetName()] = f
		}
		for _, want := range []struct {
			name, key string
			value     float64
		}{
			{"stateful_route_computes_total", "result=hit,service=room", 6},
			{"stateful_route_computes_total", "result=miss,service=room", 4},
			{"stateful_route_computes_total", "result=error,service=empty", 1},
			{"stateful_route_placements_total", "pod=0,service=room", 2},
			{"stateful_route_placements_total", "pod=1,service=room", 2},
			{"stateful_route_errors_total", "kind=NO_AVAILABLE_POD", 1},
			{"stateful_route_cache_entries", "", 4},
			{"stateful_route_pods", "service=room,state=routable", 2},
			{"stateful_route_store_call_seconds", "op=set_link_if_absent count", 4},
			{"stateful_route_event_stream_up", "", 1},
		} {
			if got, ok := value(byName, want.name, want.key); !ok || got != want.value {
				t.Errorf("%s{%s} = %v (found %v), want %v", want.name, want.key, got, ok, want.value)
			}
		}
		for _, f := range running {
			fam, ok := statefulroute.FamilyOf(f.GetName())
			if !ok || f.GetHelp() != fam.Help || strings.ToLower(f.GetType().String()) != string(fam.Kind) {
				t.Errorf("%s: help %q, type %v; the library's %+v", f.GetName(), f.GetHelp(), f.GetType(), fam)
			}
		}
		if h := byName["stateful_route_store_call_seconds"]; h == nil || h.GetType() != dto.MetricType_HISTOGRAM ||
			len(h.GetMetric()) == 0 || len(h.GetMetric()[0].GetHistogram().GetBucket()) == 0 {
			t.Errorf("store call latency is a histogram with buckets: %v", h)
		}

		// Once nothing runs, the collector serves exactly the text's numbers (ages only grow).
		for _, p := range pods {
			if err := p.Stop(bg); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for attempt := 0; ; attempt++ {
			before := parse(t, must(t)(c.MetricsText()))
			gathered, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			after := parse(t, must(t)(c.MetricsText()))
			if !same(before, after) || reread(before, gathered, after) {
				if attempt == 50 {
					t.Fatal("the metrics never stood still")
				}
				// A store call of the last moments landing, or a snapshot read sent before
				// `before` (a stopped pod's event) installed during the readings: ages restart.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if len(gathered) != len(before) {
				t.Errorf("%d families gathered, %d in the text", len(gathered), len(before))
			}
			for _, g := range gathered {
				name := g.GetName()
				b, ok := before[name]
				if !ok {
					t.Errorf("%s gathered, not in the text", name)
					continue
				}
				if g.GetType() != b.GetType() || g.GetHelp() != b.GetHelp() {
					t.Errorf("%s: %v %q gathered, %v %q in the text", name, g.GetType(), g.GetHelp(), b.GetType(), b.GetHelp())
				}
				vg, vb, va := values(g), values(b), values(after[name])
				if len(vg) != len(vb) {
					t.Errorf("%s: %d series gathered, %d in the text", name, len(vg), len(vb))
				}
				for k, v := range vb {
					got, ok := vg[k]
					switch {
					case !ok:
						t.Errorf("%s{%s}: in the text, not gathered", name, k)
					case ages(name) && (got < v || got > va[k]):
						t.Errorf("%s{%s} = %v gathered, between %v and %v in the texts", name, k, got, v, va[k])
					case !ages(name) && got != v:
						t.Errorf("%s{%s} = %v gathered, %v in the text", name, k, got, v)
					}
				}
			}
			break
		}
	})
}

func TestCollectorIsUnchecked(t *testing.T) {
	c, err := statefulroute.NewClientDriver(statefulroute.MemoryStore(), statefulroute.ServerInfo{Namespace: "default", ServiceName: "gateway"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	col := promcollector.New(c)
	descs := make(chan *prometheus.Desc, 16)
	col.Describe(descs)
	close(descs)
	if n := len(descs); n != 0 {
		t.Errorf("Describe sent %d descs: an unchecked collector sends none", n)
	}
	// It registers (no descs to check) and gathers, even before Init.
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	if !names["stateful_route_cache_entries"] || !names["stateful_route_event_stream_up"] {
		t.Errorf("a fresh driver still reports its gauges: %v", names)
	}
}

func must(t *testing.T) func(string, error) string {
	return func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
