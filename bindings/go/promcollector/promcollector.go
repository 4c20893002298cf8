// Package promcollector serves a statefulroute.ClientDriver's metrics to Prometheus: a
// prometheus.Collector over ClientDriver.Metrics whose families, kinds and help are the
// library's (statefulroute.MetricFamilies), the same series as ClientDriver.MetricsText.
//
//	prometheus.MustRegister(promcollector.New(client))
//
// It is a module of its own, so that the statefulroute package depends on nothing.
package promcollector

import (
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	statefulroute "github.com/stateful-route/stateful-route/bindings/go"
)

// collector builds const metrics of each Metrics snapshot.
type collector struct {
	client *statefulroute.ClientDriver
	descs  sync.Map // descKey -> *prometheus.Desc
}

type descKey struct {
	name, labels string
}

// New returns a collector of client's metrics. It is unchecked (Describe sends nothing): the
// label values of a family (services, pods, ops) change as the driver runs. Register one
// collector per client driver; two drivers of one process need a prometheus.WrapRegistererWith
// label each, or their series collide.
func New(client *statefulroute.ClientDriver) prometheus.Collector {
	return &collector{client: client}
}

// Describe sends nothing: an unchecked collector.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the driver's metrics now: counters and gauges as they are, and each
// histogram's _bucket, _sum and _count series (one set per label values) as one histogram.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m, err := c.client.Metrics()
	if err != nil {
		slog.Warn("stateful-route metrics", "error", err)
		return
	}
	type histogram struct {
		desc    *prometheus.Desc
		labels  []string
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	var histograms []*histogram // in the order first seen
	byKey := map[string]*histogram{}
	for _, s := range m.Samples {
		family, ok := statefulroute.FamilyOf(s.Name)
		if !ok {
			continue
		}
		names, values := make([]string, 0, len(s.Labels)), make([]string, 0, len(s.Labels))
		le := ""
		for _, l := range s.Labels {
			if family.Kind == statefulroute.MetricHistogram && l.Name == "le" {
				le = l.Value
				continue
			}
			names, values = append(names, l.Name), append(values, l.Value)
		}
		desc := c.desc(family, names)
		if family.Kind != statefulroute.MetricHistogram {
			kind := prometheus.GaugeValue
			if family.Kind == statefulroute.MetricCounter {
				kind = prometheus.CounterValue
			}
			metric, err := prometheus.NewConstMetric(desc, kind, s.Value, values...)
			if err != nil {
				metric = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- metric
			continue
		}
		// One histogram per family and label values, from its _bucket, _sum and _count.
		key := family.Name + "\xff" + strings.Join(names, "\xfe") + "\xff" + strings.Join(values, "\xfe")
		h := byKey[key]
		if h == nil {
			h = &histogram{desc: desc, labels: values, buckets: map[float64]uint64{}}
			byKey[key] = h
			histograms = append(histograms, h)
		}
		switch strings.TrimPrefix(s.Name, family.Name) {
		case "_count":
			h.count = uint64(s.Value)
		case "_sum":
			h.sum = s.Value
		case "_bucket":
			// Cumulative counts by upper bound; +Inf is the count.
			if bound, err := strconv.ParseFloat(le, 64); err == nil && !math.IsInf(bound, +1) {
				h.buckets[bound] = uint64(s.Value)
			}
		}
	}
	for _, h := range histograms {
		metric, err := prometheus.NewConstHistogram(h.desc, h.count, h.sum, h.buckets, h.labels...)
		if err != nil {
			metric = prometheus.NewInvalidMetric(h.desc, err)
		}
		ch <- metric
	}
}

// desc is the family's Desc for these label names, made once.
func (c *collector) desc(family statefulroute.MetricFamily, labels []string) *prometheus.Desc {
	key := descKey{family.Name, strings.Join(labels, "\xfe")}
	if d, ok := c.descs.Load(key); ok {
		return d.(*prometheus.Desc)
	}
	d, _ := c.descs.LoadOrStore(key, prometheus.NewDesc(family.Name, family.Help, labels, nil))
	return d.(*prometheus.Desc)
}
