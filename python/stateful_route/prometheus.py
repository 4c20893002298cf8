"""A ``prometheus_client`` collector of a client driver's metrics (needs ``prometheus_client``,
which ``import stateful_route`` itself never imports)::

    from prometheus_client import REGISTRY
    from stateful_route.prometheus import StatefulRouteCollector

    REGISTRY.register(StatefulRouteCollector(client))

Each scrape takes one ``client.metrics()`` snapshot and yields its series as metric families;
names, kinds, labels and help texts are the core's (:func:`stateful_route.metric_families`),
the numbers those of ``client.metrics_text()``.
"""

from __future__ import annotations

from typing import Any, Iterator, Union

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError:  # the original error stays attached as __context__
    raise ImportError(
        "stateful_route.prometheus needs the prometheus_client package: "
        "pip install prometheus-client (or stateful-route[prometheus])",
        name="prometheus_client",
    )

from . import metric_families

__all__ = ["StatefulRouteCollector"]

_Family = Union[CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily]


def _families() -> dict[str, _Family]:
    """One empty family per core family, by the core's name."""
    out: dict[str, _Family] = {}
    for name, kind, labels, help_text in metric_families():
        if kind == "counter":
            # CounterMetricFamily appends `_total` to its samples itself.
            base = name[: -len("_total")] if name.endswith("_total") else name
            out[name] = CounterMetricFamily(base, help_text, labels=labels)
        elif kind == "gauge":
            out[name] = GaugeMetricFamily(name, help_text, labels=labels)
        else:
            out[name] = HistogramMetricFamily(name, help_text, labels=labels)
    return out


class StatefulRouteCollector(Collector):
    """Collects ``client.metrics()`` (an asyncio or blocking ``ClientDriver``; ``metrics()`` is a
    plain call either way) for a ``prometheus_client`` registry:
    ``REGISTRY.register(StatefulRouteCollector(client))``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def describe(self) -> Iterator[Metric]:
        """The families without samples (a registry checks names with it, without a scrape)."""
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        """The families of one snapshot, in the core's order; those without series are left
        out, as in ``metrics_text()``."""
        families = _families()
        histograms: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
        for s in self._client.metrics().samples():
            family = s.family
            if family is None:
                continue
            target = families[family]
            labels = s.labels
            if isinstance(target, HistogramMetricFamily):
                le = labels.pop("le", None)
                h = histograms.setdefault(
                    (family, tuple(labels.values())), {"buckets": [], "sum": 0.0}
                )
                if s.name.endswith("_bucket"):
                    h["buckets"].append((le, s.value))
                elif s.name.endswith("_sum"):
                    h["sum"] = s.value
                continue  # `_count` is the +Inf bucket, which prometheus_client writes
            target.add_metric(list(labels.values()), s.value)
        for (family, values), h in histograms.items():
            hist = families[family]
            assert isinstance(hist, HistogramMetricFamily)
            hist.add_metric(list(values), h["buckets"], h["sum"])
        for f in families.values():
            if f.samples:
                yield f
