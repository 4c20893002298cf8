package statefulroute

// #include <stdlib.h>
// #include "stateful_route.h"
import "C"

import (
	"context"
	"slices"
	"sync"
	"time"
	"unsafe"
)

// Metrics is what a ClientDriver counted and sees, as the flat list of series the library
// reports (README "Metrics"): per service its routing calls by result (hit, miss, stale,
// error), accepted placements by pod and the pods of its snapshot by state with their loads and
// ages; errors by code; store call latencies; the event stream. No uid is ever a label. The
// numbers are those of MetricsText; the promcollector subpackage serves them to Prometheus.
type Metrics struct {
	// Samples are every series, family by family in the order of MetricFamilies.
	Samples []Sample
}

// Sample is one series: a family's name (or a histogram's _bucket, _sum or _count), its labels
// and its value.
type Sample struct {
	// Name is the series name, e.g. "stateful_route_computes_total".
	Name string
	// Labels are in the family's order (le last for a bucket).
	Labels []Label
	// Value is the series' value.
	Value float64
}

// Label is one label of a Sample: Name="Value".
type Label struct {
	Name, Value string
}

// Label returns the value of the sample's label name.
func (s Sample) Label(name string) (string, bool) {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// Value returns the value of the series name whose labels are exactly the given pairs (name,
// value, name, value, ...; in any order):
//
//	hits, ok := m.Value("stateful_route_computes_total", "service", "room", "result", "hit")
//
// ok is false when there is no such series (or labels has an odd length).
func (m Metrics) Value(name string, labels ...string) (float64, bool) {
	if len(labels)%2 != 0 {
		return 0, false
	}
	for _, s := range m.Samples {
		if s.Name != name || len(s.Labels) != len(labels)/2 {
			continue
		}
		same := true
		for i := 0; i < len(labels) && same; i += 2 {
			v, ok := s.Label(labels[i])
			same = ok && v == labels[i+1]
		}
		if same {
			return s.Value, true
		}
	}
	return 0, false
}

// Metrics returns what this driver counted and sees now. It does not block; it works before
// Init and after Close (the last figures). BaseConfig.DisableMetrics keeps the counters at 0
// (gauges are reported either way).
func (c *ClientDriver) Metrics() (Metrics, error) {
	c.front.flush(c.ptr)
	var l C.sr_sample_list
	if err := c.run(nil, func(e **C.sr_error) uint32 { return C.sr_client_metrics(c.ptr, &l, e) }); err != nil {
		return Metrics{}, err
	}
	defer C.sr_sample_list_free(&l)
	out := Metrics{Samples: make([]Sample, int(l.len))}
	if l.len > 0 {
		for i, s := range unsafe.Slice(l.samples, int(l.len)) {
			labels := make([]Label, int(s.labels_len))
			if s.labels_len > 0 {
				for j, lb := range unsafe.Slice(s.labels, int(s.labels_len)) {
					labels[j] = Label{Name: C.GoString(lb.name), Value: C.GoString(lb.value)}
				}
			}
			out.Samples[i] = Sample{Name: C.GoString(s.name), Labels: labels, Value: float64(s.value)}
		}
	}
	return out, nil
}

// MetricsText returns Metrics in the Prometheus text exposition format (version 0.0.4, with
// # HELP and # TYPE), to append to a service's own /metrics. It does not block.
func (c *ClientDriver) MetricsText() (string, error) {
	c.front.flush(c.ptr)
	var text *C.char
	if err := c.run(nil, func(e **C.sr_error) uint32 { return C.sr_client_metrics_text(c.ptr, &text, e) }); err != nil {
		return "", err
	}
	s, _ := goString(text)
	return s, nil
}

// MetricKind is the kind of a metric family, as Prometheus types it.
type MetricKind string

// The metric kinds.
const (
	// MetricCounter only goes up.
	MetricCounter MetricKind = "counter"
	// MetricGauge goes up and down.
	MetricGauge MetricKind = "gauge"
	// MetricHistogram has _bucket (cumulative, by le), _sum and _count series.
	MetricHistogram MetricKind = "histogram"
)

// MetricFamily is one family of series a ClientDriver reports: its name, kind, labels and help
// (the library's table, the one MetricsText's # HELP and # TYPE lines come from).
type MetricFamily struct {
	// Name is the family's name (a histogram's series add _bucket, _sum and _count).
	Name string
	// Kind is its kind.
	Kind MetricKind
	// Labels are its label names, in the order samples carry them (a bucket adds le last).
	Labels []string
	// Help says what it means.
	Help string
}

var families = sync.OnceValue(func() []MetricFamily {
	var table *C.sr_metric_family
	n := int(C.sr_metric_families(&table))
	if n == 0 || table == nil {
		return nil
	}
	out := make([]MetricFamily, n)
	for i, f := range unsafe.Slice(table, n) {
		kind := MetricGauge
		switch f.kind {
		case C.SR_METRIC_COUNTER:
			kind = MetricCounter
		case C.SR_METRIC_HISTOGRAM:
			kind = MetricHistogram
		}
		labels := make([]string, int(f.labels_len))
		if f.labels_len > 0 {
			for j, l := range unsafe.Slice(f.labels, int(f.labels_len)) {
				labels[j] = C.GoString(l)
			}
		}
		out[i] = MetricFamily{Name: C.GoString(f.name), Kind: kind, Labels: labels, Help: C.GoString(f.help)}
	}
	return out
})

// MetricFamilies returns every family a ClientDriver reports, in exposition order.
func MetricFamilies() []MetricFamily {
	out := slices.Clone(families())
	for i := range out {
		out[i].Labels = slices.Clone(out[i].Labels)
	}
	return out
}

// FamilyOf returns the family the series name belongs to (a family's name, or a histogram's
// _bucket, _sum or _count series); false for a name that is none.
func FamilyOf(series string) (MetricFamily, bool) {
	f := C.sr_metric_family_of(str(series))
	if f == nil {
		return MetricFamily{}, false
	}
	name := C.GoString(f.name)
	for _, fam := range families() {
		if fam.Name == name {
			fam.Labels = slices.Clone(fam.Labels)
			return fam, true
		}
	}
	return MetricFamily{}, false
}

// Explanation is what a placement for (uid, service) would do now, and why (ExplainPlacement).
type Explanation struct {
	Namespace, UID, Service string
	// Link is the user's link in the store; nil: none.
	Link *ExplainedLink
	// CachedPod is the pod this driver's cache holds for the user, or -1.
	CachedPod int
	// Policy is the placement policy in force for the service ("p2c", "round_robin", ...).
	Policy string
	// LoadFactor is its load factor (rendezvous; 0 for the others).
	LoadFactor float64
	// LoadRange is the good set's load range (BaseConfig.LoadRange).
	LoadRange int
	// Pods are every pod of the snapshot, by index.
	Pods []ExplainedPod
	// WouldPlaceOn is the pod a new user would be placed on now (for random policies, one
	// draw), or -1.
	WouldPlaceOn int
	// Answer is the pod ComputeLinkedPod would answer now; -1: it would fail (see Summary).
	Answer int
	// Summary is the answer in words.
	Summary string
	// SnapshotAge is the time since the snapshot was read; -1 if it never was.
	SnapshotAge time.Duration
}

// ExplainedLink is the user's link as ExplainPlacement found it in the store.
type ExplainedLink struct {
	// PodIndex is the pod it points to.
	PodIndex int
	// Persistent links have no TTL.
	Persistent bool
	// TTL is the remaining lifetime of a temporary link (0 when persistent).
	TTL time.Duration
	// PodAlive tells whether that pod is alive in this driver's snapshot.
	PodAlive bool
}

// ExplainedPod is one pod of the service as a placement sees it.
type ExplainedPod struct {
	PodIndex int
	// Load is its published load.
	Load int
	// Placed counts the new users this driver placed on it since its snapshot was read.
	Placed int
	// RoutingState is the routing state it published.
	RoutingState RoutingState
	// Alive tells whether it published recently and is not shut down.
	Alive bool
	// Age is the time since it published.
	Age time.Duration
	// Weight is its published placement weight.
	Weight int
	// Verdict is the good set's verdict: "kept" (a candidate), "warming" (a candidate with
	// the probability Reason gives: slow start), "dead", "not_routable" (alive, takes no new
	// users) or "over_load_range".
	Verdict string
	// Reason is the verdict in words, with the numbers behind it.
	Reason string
}

func seconds(s C.double) time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// ExplainPlacement tells why uid gets the pod it gets for service: a dry run that writes
// nothing and counts nothing. It returns the user's link in the store and in this driver's
// cache, every pod of the snapshot with its load, placements since the read, routing state,
// age, weight and the good set's verdict on it, the policy and the pod a new user would get
// now. It costs one store read (ctx is checked before the call).
func (c *ClientDriver) ExplainPlacement(ctx context.Context, namespace, uid, service string) (Explanation, error) {
	var e C.sr_explanation
	if err := c.run(ctx, func(err **C.sr_error) uint32 {
		return C.sr_client_explain_placement(c.ptr, str(namespace), str(uid), str(service), &e, err)
	}); err != nil {
		return Explanation{CachedPod: -1, WouldPlaceOn: -1, Answer: -1, SnapshotAge: -1}, err
	}
	defer C.sr_explanation_free(&e)
	out := Explanation{
		Namespace:    C.GoString(e.namespace_name),
		UID:          C.GoString(e.uid),
		Service:      C.GoString(e.service),
		CachedPod:    int(e.cached_pod),
		Policy:       C.GoString(e.policy),
		LoadFactor:   float64(e.load_factor),
		LoadRange:    int(e.load_range),
		Pods:         make([]ExplainedPod, int(e.pods_len)),
		WouldPlaceOn: int(e.would_place_on),
		Answer:       int(e.answer),
		Summary:      C.GoString(e.summary),
		SnapshotAge:  -1,
	}
	if e.snapshot_age_seconds >= 0 {
		out.SnapshotAge = seconds(e.snapshot_age_seconds)
	}
	if l := e.link; l.pod_index >= 0 {
		out.Link = &ExplainedLink{PodIndex: int(l.pod_index), Persistent: bool(l.persistent), PodAlive: bool(l.pod_alive)}
		if !out.Link.Persistent && l.ttl_seconds >= 0 {
			out.Link.TTL = seconds(l.ttl_seconds)
		}
	}
	if e.pods_len > 0 {
		for i, p := range unsafe.Slice(e.pods, int(e.pods_len)) {
			out.Pods[i] = ExplainedPod{
				PodIndex:     int(p.pod_index),
				Load:         int(p.load),
				Placed:       int(p.placed),
				RoutingState: RoutingState(p.routing_state),
				Alive:        bool(p.alive),
				Age:          seconds(p.age_seconds),
				Weight:       int(p.weight),
				Verdict:      C.GoString(p.verdict),
				Reason:       C.GoString(p.reason),
			}
		}
	}
	return out, nil
}
