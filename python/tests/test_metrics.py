"""Operators' tools through the package (README "Metrics", "Kubernetes"): ``metrics()`` and
``metrics_text()`` count what a test did, ``explain_placement`` is a dry run naming every pod's
verdict, ``ServerInfo.from_env`` reads the pod's environment, ``stop_on_signal`` stops a pod on
SIGTERM, and ``stateful_route.prometheus`` hands the same series to ``prometheus_client``.

Every driver test runs on memory and on Redis, with the asyncio classes and with the blocking
ones (inside one ``asyncio.run``: ``call`` awaits what the asyncio classes return). The numbers
are those of core/tests/metrics.rs: round-robin placement, no CPU, no slow start.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest
from conftest import NS, SVC, Env, aeventually, fast_config, info

import stateful_route as sr
from stateful_route import blocking

MODES = ["asyncio", "blocking"]
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


async def call(value: Any) -> Any:
    """The value of a method of either family: awaited when it is an awaitable."""
    return await value if inspect.isawaitable(value) else value


def module(mode: str) -> Any:
    return sr if mode == "asyncio" else blocking


async def make_store(env: Env, mode: str) -> Any:
    return await env.astore() if mode == "asyncio" else env.store()


def config(**kw: Any) -> sr.BaseConfig:
    return fast_config(placement="round_robin", slow_start_seconds=0, **kw)


async def start_pods(mod: Any, store: Any, cfg: sr.BaseConfig, loads: list[int]) -> list[Any]:
    servers = []
    for i, load in enumerate(loads):
        server = mod.ServerDriver(store, info(i), cfg)
        await call(server.set_load_state(load))
        await call(server.start())
        servers.append(server)
    return servers


async def stop_all(*drivers: Any) -> None:
    for d in drivers:
        await call(d.close() if hasattr(d, "close") else d.stop())


def parse(text: str) -> Series:
    """The series of a Prometheus text exposition: {(name, labels): value}."""
    out: Series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        key = (name, frozenset(_LABEL.findall(labels)))
        assert key not in out, f"series twice: {line}"
        out[key] = float(value)
    return out


def value(series: Series, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in series, f"no {key} in {sorted(series)}"
    return series[key]


def of_samples(snap: sr.MetricsSnapshot) -> Series:
    return {(s.name, frozenset(s.labels.items())): s.value for s in snap.samples()}


@pytest.mark.parametrize("mode", MODES)
def test_counts_what_a_test_did(env: Env, mode: str) -> None:
    async def main() -> None:
        mod, store = module(mode), await make_store(env, mode)
        cfg = config()
        servers = await start_pods(mod, store, cfg, [10, 10])
        gw = mod.ClientDriver(store, info(0, "gw"), cfg)
        await call(gw.init())
        # 4 new users (round robin: 0, 1, 0, 1), then 6 hits on them.
        for i in range(4):
            await call(gw.compute_linked_pod(NS, f"u{i}", SVC))
        for i in range(6):
            await call(gw.compute_linked_pod(NS, f"u{i % 4}", SVC))
        # One error of a known kind: a service nobody serves.
        with pytest.raises(sr.NoAvailablePodError):
            await call(gw.compute_linked_pod(NS, "u0", "empty"))
        # A hit through the synchronous probe counts too.
        assert gw.compute_cached(NS, "u0", SVC) is not None

        m = gw.metrics()
        assert isinstance(m, sr.MetricsSnapshot) and m.namespace == NS and m.enabled is True
        s = m.service(SVC)
        assert isinstance(s, sr.ServiceMetrics) and s.service == SVC
        assert (s.hits, s.misses, s.stale, s.errors) == (7, 4, 0, 0), s
        assert s.placements == {0: 2, 1: 2}
        assert [(p.pod_index, p.state, p.routing_state, p.load) for p in s.pods] == [
            (0, "routable", "READY", 10),
            (1, "routable", "READY", 10),
        ]
        assert all(p.weight == 100 and 0 <= p.age_seconds < 5 for p in s.pods), s.pods
        assert s.snapshot_reads >= 1 and s.snapshot_read_errors == 0
        assert s.snapshot_age_seconds is not None and s.snapshot_age_seconds >= 0
        empty = m.service("empty")
        assert empty is not None and (empty.errors, empty.hits, empty.misses) == (1, 0, 0)
        assert m.service("nobody") is None
        assert [x.service for x in m.services] == ["empty", SVC]
        assert m.errors == {"NO_AVAILABLE_POD": 1}
        assert m.cache_entries == 4
        calls = {c.op: c for c in m.store_calls}
        sla = calls["set_link_if_absent"]
        assert isinstance(sla, sr.StoreCallMetrics) and (sla.calls, sla.errors) == (4, 0)
        assert sla.seconds_sum > 0 and len(sla.buckets) == 14
        assert all(isinstance(le, float) and isinstance(n, int) for le, n in sla.buckets)
        counts = [n for _, n in sla.buckets]
        assert counts == sorted(counts) and counts[-1] <= 4, sla.buckets
        p = m.propagation
        assert isinstance(p, sr.PropagationMetrics) and p.enabled and p.connected, p
        assert (p.gaps, p.invalidations) == (0, 0)

        # The flat samples and the text of one snapshot hold the same series.
        samples = of_samples(m)
        assert parse(m.to_prometheus()) == samples
        assert value(samples, "stateful_route_computes_total", service=SVC, result="hit") == 7
        # metrics_text(): the numbers a scrape would see.
        t = gw.metrics_text()
        series = parse(t)
        computes = "stateful_route_computes_total"
        assert value(series, computes, service=SVC, result="hit") == 7
        assert value(series, computes, service=SVC, result="miss") == 4
        assert value(series, computes, service=SVC, result="error") == 0
        assert value(series, computes, service="empty", result="error") == 1
        placements = "stateful_route_placements_total"
        assert value(series, placements, service=SVC, pod="0") == 2
        assert value(series, placements, service=SVC, pod="1") == 2
        assert value(series, "stateful_route_errors_total", kind="NO_AVAILABLE_POD") == 1
        assert value(series, "stateful_route_pods", service=SVC, state="routable") == 2
        assert value(series, "stateful_route_pods", service=SVC, state="draining") == 0
        assert value(series, "stateful_route_pod_load", service=SVC, pod="1") == 10
        assert value(series, "stateful_route_cache_entries") == 4
        count = "stateful_route_store_call_seconds_count"
        assert value(series, count, op="set_link_if_absent") == 4
        assert value(series, "stateful_route_event_stream_up") == 1
        assert "# TYPE stateful_route_store_call_seconds histogram\n" in t
        assert "u0" not in t, "no uid in any label"

        # A drain shows as a draining pod once the gateway sees it.
        await call(servers[1].set_routing_state(sr.RoutingState.DENY_NEW_CALL))

        async def draining() -> bool:
            room = gw.metrics().service(SVC)
            return room is not None and [p.state for p in room.pods] == ["routable", "draining"]

        await aeventually("pod 1 draining in the metrics", draining)
        assert value(parse(gw.metrics_text()), "stateful_route_pods", service=SVC, state="draining")
        # A link moved elsewhere counts as a link event and drops the entry.
        await call(store.set_link(NS, "u0", SVC, 1, -1))

        async def moved() -> bool:
            p = gw.metrics().propagation
            return p.link_events >= 1 and p.invalidations >= 1

        await aeventually("the move counted", moved)
        await stop_all(gw, *servers)
        # The last figures stay readable after close.
        assert gw.metrics().service(SVC).hits == 7  # type: ignore[union-attr]

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_counting_off_counts_nothing_but_reports_gauges(env: Env, mode: str) -> None:
    async def main() -> None:
        mod, store = module(mode), await make_store(env, mode)
        cfg = config(metrics=False)
        assert cfg.metrics is False and "metrics=False" in repr(cfg)
        servers = await start_pods(mod, store, cfg, [10])
        gw = mod.ClientDriver(store, info(0, "gw"), cfg)
        assert gw.config.metrics is False
        await call(gw.init())
        for _ in range(3):
            assert await call(gw.compute_linked_pod(NS, "u", SVC)) == 0
        with pytest.raises(sr.NoAvailablePodError):
            await call(gw.compute_linked_pod(NS, "u", "empty"))
        m = gw.metrics()
        assert m.enabled is False
        s = m.service(SVC)
        assert s is not None and (s.hits, s.misses, s.errors, s.placements) == (0, 0, 0, {})
        assert m.errors == {}
        assert [(p.pod_index, p.state) for p in s.pods] == [(0, "routable")]
        assert m.cache_entries == 1
        series = parse(gw.metrics_text())
        assert value(series, "stateful_route_computes_total", service=SVC, result="hit") == 0
        assert value(series, "stateful_route_pods", service=SVC, state="routable") == 1
        await stop_all(gw, *servers)

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_metrics_before_init(mode: str) -> None:
    gw = module(mode).ClientDriver(blocking.Store.memory(), info(0, "gw"))
    m = gw.metrics()
    assert (m.namespace, m.enabled, m.cache_entries, m.services, m.errors) == (NS, True, 0, [], {})
    assert m == gw.metrics()
    assert "stateful_route_cache_entries 0\n" in gw.metrics_text()


@pytest.mark.parametrize("mode", MODES)
def test_explain_placement(env: Env, mode: str) -> None:
    async def main() -> None:
        mod, store = module(mode), await make_store(env, mode)
        cfg = config(load_range=100)
        servers = await start_pods(mod, store, cfg, [10, 500, 20])
        await call(servers[2].set_routing_state("DENY_NEW_CALL"))
        gw = mod.ClientDriver(store, info(0, "gw"), cfg)
        await call(gw.init())
        before = env.keys(store)
        e = await call(gw.explain_placement(NS, "newcomer", SVC))
        assert env.keys(store) == before, "explain writes nothing"
        assert isinstance(e, sr.Explanation)
        assert (e.namespace, e.uid, e.service) == (NS, "newcomer", SVC)
        assert (e.link, e.cached_pod, e.policy, e.load_range) == (None, None, "round_robin", 100)
        assert e.load_factor == 0
        assert [(p.pod_index, p.verdict) for p in e.pods] == [
            (0, "kept"),
            (1, "over_load_range"),
            (2, "not_routable"),
        ]
        assert all(isinstance(p, sr.ExplainedPod) for p in e.pods)
        assert [(p.load, p.routing_state, p.alive, p.weight) for p in e.pods] == [
            (10, "READY", True, 100),
            (500, "READY", True, 100),
            (20, "DENY_NEW_CALL", True, 100),
        ]
        assert "load 500" in e.pods[1].reason, e.pods[1].reason
        assert all(p.reason and p.placed == 0 and p.age_seconds >= 0 for p in e.pods)
        assert (e.would_place_on, e.answer) == (0, 0)
        assert e.summary.startswith("no link"), e.summary
        assert e.snapshot_age_seconds is not None and e.snapshot_age_seconds >= 0
        m = gw.metrics()
        room = m.service(SVC)
        assert room is not None and (room.placements, room.hits, room.misses) == ({}, 0, 0)
        assert m.errors == {} and m.cache_entries == 0

        # A persistent link: explain shows it and answers with it.
        await call(store.set_link(NS, "linked", SVC, 2, -1))
        e = await call(gw.explain_placement("", "linked", SVC))
        assert isinstance(e.link, sr.ExplainedLink)
        link = e.link
        assert (link.pod_index, link.persistent, link.ttl_seconds, link.pod_alive) == (
            2,
            True,
            None,
            True,
        )
        assert e.answer == 2 and "persistent" in e.summary, e.summary
        # A temporary link placed by this gateway: in the store and in its cache.
        pod = await call(gw.compute_linked_pod(NS, "placed", SVC))
        e = await call(gw.explain_placement(NS, "placed", SVC))
        assert e.link is not None and not e.link.persistent and e.link.pod_index == pod
        assert e.link.ttl_seconds is not None and 0 < e.link.ttl_seconds <= 300
        assert (e.cached_pod, e.answer) == (pod, pod) and "temporary" in e.summary
        assert e == e and e != await call(gw.explain_placement(NS, "linked", SVC))

        # Bad input: typed errors, nothing sent.
        with pytest.raises(sr.InvalidArgumentError):
            await call(gw.explain_placement(NS, "", SVC))
        with pytest.raises(sr.InvalidArgumentError, match="uid"):
            await call(gw.explain_placement(NS, None, SVC))
        with pytest.raises(sr.InvalidArgumentError, match="service"):
            await call(gw.explain_placement(NS, "u", 7))
        with pytest.raises(sr.NamespaceNotLocalError):
            await call(gw.explain_placement("elsewhere", "u", SVC))
        # A service with no pod: no answer, said in words.
        e = await call(gw.explain_placement(NS, "u", "empty"))
        assert (e.pods, e.would_place_on, e.answer) == ([], None, None)
        assert e.summary.startswith("NO_AVAILABLE_POD"), e.summary
        await stop_all(gw, *servers)

    asyncio.run(main())


# --- ServerInfo.from_env --------------------------------------------------------------------

K8S_VARS = ["POD_NAMESPACE", "POD_NAME", "HOSTNAME", "STATEFUL_ROUTE_SERVICE"]
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name in K8S_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, v in values.items():
        monkeypatch.setenv(name, v)


def _info(namespace: str, service: str, pod: int) -> sr.ServerInfo:
    return sr.ServerInfo(namespace=namespace, service_name=service, pod_index=pod)


def test_server_info_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert blocking.ServerInfo.from_env is sr.ServerInfo.from_env
    _set_env(monkeypatch, POD_NAMESPACE="games", POD_NAME="room-12", HOSTNAME="other-3")
    assert sr.ServerInfo.from_env() == _info("games", "room", 12)
    assert sr.ServerInfo.from_env(None) == _info("games", "room", 12)
    assert sr.ServerInfo.from_env("chat") == _info("games", "chat", 12)
    # HOSTNAME when POD_NAME is not set.
    _set_env(monkeypatch, POD_NAMESPACE="prod", HOSTNAME="room-0")
    assert sr.ServerInfo.from_env(service="chat") == _info("prod", "chat", 0)
    # STATEFUL_ROUTE_SERVICE over the StatefulSet's name; the argument over both.
    _set_env(monkeypatch, POD_NAMESPACE="a", HOSTNAME="my-room-3", STATEFUL_ROUTE_SERVICE="lobby")
    assert sr.ServerInfo.from_env() == _info("a", "lobby", 3)
    assert sr.ServerInfo.from_env("chat") == _info("a", "chat", 3)
    # A driver takes it like any ServerInfo.
    gw = blocking.ClientDriver(blocking.Store.memory(), sr.ServerInfo.from_env())
    assert gw.server_info == _info("a", "lobby", 3)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"POD_NAMESPACE": "a"}, "POD_NAME"),
        ({"POD_NAMESPACE": "a", "POD_NAME": "room"}, "POD_NAME"),
        ({"POD_NAMESPACE": "a", "HOSTNAME": "room-x"}, "HOSTNAME"),
        ({"POD_NAMESPACE": "a", "POD_NAME": "room-007"}, "POD_NAME"),
        ({"POD_NAMESPACE": "Bad_NS", "POD_NAME": "room-1"}, "POD_NAMESPACE"),
        ({"POD_NAMESPACE": "a", "POD_NAME": "room-1", "STATEFUL_ROUTE_SERVICE": "a b"}, None),
    ],
)
def test_server_info_from_env_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], variable: str | None
) -> None:
    _set_env(monkeypatch, **values)
    with pytest.raises(sr.InvalidConfigError) as raised:
        sr.ServerInfo.from_env()
    assert raised.value.code == "INVALID_CONFIG"
    assert (variable or "STATEFUL_ROUTE_SERVICE") in raised.value.message, raised.value.message


def test_server_info_from_env_without_a_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env(monkeypatch, POD_NAME="room-1")
    if os.path.exists(NAMESPACE_FILE):  # inside a Kubernetes pod: the mounted namespace
        with open(NAMESPACE_FILE) as f:
            assert sr.ServerInfo.from_env().namespace == f.read().strip()
        return
    with pytest.raises(sr.InvalidConfigError, match="POD_NAMESPACE"):
        sr.ServerInfo.from_env()


def test_server_info_from_env_bad_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env(monkeypatch, POD_NAMESPACE="a", POD_NAME="room-1")
    with pytest.raises(sr.InvalidArgumentError, match="service"):
        sr.ServerInfo.from_env(7)  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidConfigError):
        sr.ServerInfo.from_env("")


def test_base_config_metrics_flag() -> None:
    assert sr.BaseConfig().metrics is True and "metrics=True" in repr(sr.BaseConfig())
    assert sr.BaseConfig(metrics=None).metrics is True
    assert sr.BaseConfig(metrics=False).metrics is False
    for bad in (0, 1, "no", 1.0):
        with pytest.raises(sr.InvalidConfigError, match="metrics"):
            sr.BaseConfig(metrics=bad)  # type: ignore[arg-type]


# --- stop_on_signal -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_stop_on_signal(env: Env, mode: str) -> None:
    async def main() -> None:
        mod, store = module(mode), await make_store(env, mode)
        server = mod.ServerDriver(store, info(0), fast_config(drain_seconds=0.3))
        await call(server.start())
        loop = asyncio.get_running_loop()
        stopped = sr.stop_on_signal(server)
        assert isinstance(stopped, asyncio.Future) and not stopped.done()
        os.kill(os.getpid(), signal.SIGTERM)

        async def draining() -> bool:
            return bool(server.get_routing_state() != sr.RoutingState.READY)

        await aeventually("the drain started", draining)
        # The handler went on the signal (a second SIGTERM gets the default action).
        assert loop.remove_signal_handler(signal.SIGTERM) is False, "the handler was removed"
        assert await asyncio.wait_for(stopped, timeout=30) == signal.SIGTERM
        assert server.get_routing_state() == sr.RoutingState.SHUTDOWN
        (state,) = await call(store.pod_states(NS, SVC))
        assert state.routing_state == sr.RoutingState.SHUTDOWN
        # A second stop (the pod's own, on its way out) is a no-op.
        await call(server.stop())

    asyncio.run(main())


def test_stop_on_signal_any_of_several_signals_then_none() -> None:
    async def main() -> None:
        store = sr.Store.memory()
        server = sr.ServerDriver(store, info(0), fast_config())
        await server.start()
        loop = asyncio.get_running_loop()
        stopped = sr.stop_on_signal(server, signals=[signal.SIGTERM, signal.SIGUSR1], loop=loop)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert await asyncio.wait_for(stopped, timeout=30) == signal.SIGUSR1
        assert server.get_routing_state() == sr.RoutingState.SHUTDOWN
        for s in (signal.SIGTERM, signal.SIGUSR1):
            assert loop.remove_signal_handler(s) is False, s

    asyncio.run(main())


def test_stop_on_signal_stops_once() -> None:
    class Counting:
        stops = 0

        def stop(self) -> Any:
            self.stops += 1
            return asyncio.sleep(0)

    async def main() -> None:
        server = Counting()
        # SIGWINCH: ignored by default, so the second one is harmless once the handler is gone.
        stopped = sr.stop_on_signal(server, signals=[signal.SIGWINCH])  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGWINCH)
        os.kill(os.getpid(), signal.SIGWINCH)
        assert await asyncio.wait_for(stopped, timeout=30) == signal.SIGWINCH
        # A barrier: a handler of the test's own sees a third SIGWINCH after the loop has
        # handled the second.
        loop, seen = asyncio.get_running_loop(), asyncio.Event()
        loop.add_signal_handler(signal.SIGWINCH, seen.set)
        try:
            os.kill(os.getpid(), signal.SIGWINCH)
            await asyncio.wait_for(seen.wait(), timeout=30)
        finally:
            loop.remove_signal_handler(signal.SIGWINCH)
        assert server.stops == 1

    asyncio.run(main())


def test_stop_on_signal_cancelled_removes_its_handlers() -> None:
    async def main() -> None:
        store = sr.Store.memory()
        async with sr.ServerDriver(store, info(0), fast_config()) as server:
            loop = asyncio.get_running_loop()
            stopped = sr.stop_on_signal(server)
            stopped.cancel()
            await asyncio.sleep(0)  # the done callbacks run
            assert loop.remove_signal_handler(signal.SIGTERM) is False
            assert server.get_routing_state() == sr.RoutingState.READY
        with pytest.raises(ValueError):
            sr.stop_on_signal(server, signals=[123456])

    asyncio.run(main())


def test_stop_on_signal_reports_a_failed_stop() -> None:
    class Failing:
        def stop(self) -> Any:
            async def fail() -> None:
                raise sr.StoreUnavailableError("down")

            return fail()

    async def main() -> None:
        stopped = sr.stop_on_signal(Failing())  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(sr.StoreUnavailableError):
            await asyncio.wait_for(stopped, timeout=30)
        assert asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM) is False

    asyncio.run(main())


# --- prometheus_client ----------------------------------------------------------------------


def test_metric_families_are_the_core_list() -> None:
    families = sr.metric_families()
    names = [f[0] for f in families]
    assert len(names) == len(set(names)) and "stateful_route_computes_total" in names
    for name, kind, labels, help_text in families:
        assert name.startswith("stateful_route_") and help_text, name
        assert kind in ("counter", "gauge", "histogram"), (name, kind)
        assert kind != "counter" or name.endswith("_total"), name
        assert isinstance(labels, list) and all(isinstance(x, str) for x in labels)
    assert ("stateful_route_computes_total", "counter", ["service", "result"]) == families[0][:3]


class Fixed:
    """A stand-in client whose metrics() is one snapshot (so that two expositions compare)."""

    def __init__(self, snap: sr.MetricsSnapshot) -> None:
        self.snap, self.calls = snap, 0

    def metrics(self) -> sr.MetricsSnapshot:
        self.calls += 1
        return self.snap


def _scrape(client: Any) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    from stateful_route.prometheus import StatefulRouteCollector

    registry = CollectorRegistry()
    registry.register(StatefulRouteCollector(client))
    return generate_latest(registry).decode()


@pytest.mark.parametrize("mode", MODES)
def test_prometheus_collector(env: Env, mode: str) -> None:
    from prometheus_client import CollectorRegistry

    from stateful_route.prometheus import StatefulRouteCollector

    async def main() -> None:
        mod, store = module(mode), await make_store(env, mode)
        cfg = config()
        servers = await start_pods(mod, store, cfg, [10, 30])
        gw = mod.ClientDriver(store, info(0, "gw"), cfg)
        await call(gw.init())
        for i in range(6):
            await call(gw.compute_linked_pod(NS, f"u{i % 3}", SVC))
        with pytest.raises(sr.NoAvailablePodError):
            await call(gw.compute_linked_pod(NS, "u", "empty"))

        # One snapshot: every series of the text, histograms included, with the same values,
        # and the core's HELP and TYPE of each family.
        snap = gw.metrics()
        fixed = Fixed(snap)
        registry = CollectorRegistry()
        registry.register(StatefulRouteCollector(fixed))
        assert fixed.calls == 0, "registering describes without a scrape"
        from prometheus_client import generate_latest

        out = generate_latest(registry).decode()
        assert fixed.calls == 1
        text = snap.to_prometheus()
        assert parse(out) == parse(text)
        for name, kind, _, help_text in sr.metric_families():
            if f"# TYPE {name} " in text:
                assert f"# HELP {name} {help_text}\n" in out, name
                assert f"# TYPE {name} {kind}\n" in out, name
            else:
                assert f" {name} " not in out, name

        # The live client against metrics_text(): counters and gauges that nothing running
        # changes (the pods publish and the gateway refreshes meanwhile: store calls, events
        # and ages move).
        live, now = parse(_scrape(gw)), parse(gw.metrics_text())
        steady = (
            "stateful_route_computes_total",
            "stateful_route_placements_total",
            "stateful_route_errors_total",
            "stateful_route_cache_entries",
            "stateful_route_pods",
            "stateful_route_pod_load",
            "stateful_route_event_gaps_total",
            "stateful_route_event_stream_up",
            "stateful_route_cache_invalidations_total",
        )
        picked = {k: v for k, v in now.items() if k[0] in steady}
        assert {k: v for k, v in live.items() if k[0] in steady} == picked
        assert {k[0] for k in picked} == set(steady)
        assert value(live, "stateful_route_computes_total", service=SVC, result="hit") == 3
        assert value(live, "stateful_route_computes_total", service=SVC, result="miss") == 3
        assert value(live, "stateful_route_errors_total", kind="NO_AVAILABLE_POD") == 1
        assert value(live, "stateful_route_pod_load", service=SVC, pod="1") == 30
        assert set(live) == set(now), set(live) ^ set(now)
        await stop_all(gw, *servers)

    asyncio.run(main())


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_prometheus_client_is_an_optional_import() -> None:
    plain = _python(
        "import sys, stateful_route, stateful_route.blocking\n"
        "assert 'prometheus_client' not in sys.modules, 'imported by the package'\n"
        "print('ok')"
    )
    assert plain.stdout == "ok\n", plain.stderr
    missing = _python(
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if it were not installed\n"
        "try:\n"
        "    import stateful_route.prometheus\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e.name, '|', e)\n"
    )
    assert missing.stdout.startswith("ImportError prometheus_client | "), missing
    assert "needs the prometheus_client package: pip install prometheus-client" in missing.stdout
