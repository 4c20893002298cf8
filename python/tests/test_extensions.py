"""Extension points (issue 6) from Python: a callable as placement policy and load calculator,
built-in policies by name (rendezvous with its load factor, weighted), pod weights, load
signals and the new config keywords. Every driver test runs on the memory store and on Redis.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

import pytest
from conftest import NS, SVC, Env, eventually, fast_config, info

import stateful_route as sr
from stateful_route import blocking

MASK = (1 << 64) - 1


def rendezvous_score(service: str, uid: str, pod: int) -> int:
    """core/src/placement.rs `rendezvous_score`: FNV-1a of (service, 0, uid, 0, pod LE) and a
    splitmix64 finish, written again here so the test checks the exact choice."""
    h = 0xCBF29CE484222325
    for b in service.encode() + b"\0" + uid.encode() + b"\0" + pod.to_bytes(4, "little"):
        h = ((h ^ b) * 0x100000001B3) & MASK
    z = (h + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Fleet:
    """`n` started pods of SVC and one initialised gateway on one blocking store."""

    def __init__(self, env: Env, n: int = 3, **config: Any) -> None:
        self.store = env.store()
        self.config = fast_config(**config)
        self.pods = [blocking.ServerDriver(self.store, info(i), self.config) for i in range(n)]
        for p in self.pods:
            p.start()
        self.gw = blocking.ClientDriver(self.store, info(0, "gw"), self.config)
        self.gw.init()
        eventually(f"{n} routable pods", lambda: len(self.gw.routable_pods(SVC)) == n)

    def place(self, count: int, prefix: str = "u") -> collections.Counter[int]:
        return collections.Counter(
            self.gw.compute_linked_pod("", f"{prefix}{i}", SVC) for i in range(count)
        )

    def close(self) -> None:
        self.gw.close()
        for p in self.pods:
            p.stop()


@pytest.fixture
def fleet(env: Env) -> Any:
    made: list[Fleet] = []

    def make(n: int = 3, **config: Any) -> Fleet:
        f = Fleet(env, n, **config)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


# --- custom placement -------------------------------------------------------------------------


def test_a_python_policy_decides_where_new_users_go(fleet: Any) -> None:
    f = fleet()
    calls: list[tuple[list[sr.Candidate], sr.PlacementRequest, str]] = []

    def last_pod(candidates: list[sr.Candidate], request: sr.PlacementRequest) -> int:
        calls.append((candidates, request, threading.current_thread().name))
        return len(candidates) - 1

    # Without the policy p2c spreads users; with it every new user goes to the last pod.
    assert len(f.place(60, "before")) > 1
    f.gw.set_service_placement(SVC, last_pod)
    assert f.place(30) == {2: 30}
    assert len(calls) == 30
    candidates, request, _ = calls[0]
    assert [c.pod_index for c in candidates] == [0, 1, 2]
    c = candidates[0]
    assert (c.load, c.weight, c.routing_state) == (0, 100, sr.RoutingState.READY)
    assert c.effective_load == c.load + c.placed and c.age_ms >= 0
    assert (request.namespace, request.uid, request.service) == (NS, "u0", SVC)
    # The sequence counts this driver's placements for the service.
    seqs = [r.sequence for _, r, _ in calls]
    assert seqs == sorted(seqs) and len(set(seqs)) == 30
    # A cache hit and a known user never call the policy again.
    assert f.place(30) == {2: 30} and len(calls) == 30
    assert "PlacementRequest(" in repr(request) and "Candidate(" in repr(c)


def test_a_policy_in_base_config_is_used_by_asyncio_drivers(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        seen: list[str] = []

        def first_pod(candidates: list[sr.Candidate], request: sr.PlacementRequest) -> int:
            seen.append(request.uid)
            return 0

        cfg = fast_config(placement=first_pod)
        assert cfg.placement == "custom"
        pods = [sr.ServerDriver(store, info(i), cfg) for i in range(3)]
        for p in pods:
            await p.start()
        async with sr.ClientDriver(store, info(0, "gw"), cfg) as gw:
            # 64 concurrent misses: the policy runs on the library's threads and takes the GIL.
            got = await asyncio.gather(
                *(gw.compute_linked_pod("", f"a{i}", SVC) for i in range(64))
            )
            assert set(got) == {0}
            assert sorted(seen) == sorted(f"a{i}" for i in range(64))
        for p in pods:
            await p.stop()

    asyncio.run(main())


def test_policy_errors_are_typed_and_write_nothing(fleet: Any, env: Env) -> None:
    f = fleet()

    def raises(candidates: list[sr.Candidate], request: sr.PlacementRequest) -> int:
        raise ValueError("no room for " + request.uid)

    f.gw.set_service_placement(SVC, raises)
    with pytest.raises(sr.InternalError) as e:
        f.gw.compute_linked_pod("", "victim", SVC)
    assert e.value.code == "INTERNAL"
    assert "placement callback failed: ValueError: no room for victim" in str(e.value)
    assert f.store.get_link(NS, "victim", SVC) is None
    assert not [k for k in env.keys(f.store) if "victim" in k]

    # A StatefulRouteError raised by the policy keeps its class.
    def refuses(candidates: list[sr.Candidate], request: sr.PlacementRequest) -> int:
        raise sr.NoAvailablePodError("maintenance")

    f.gw.set_service_placement(SVC, refuses)
    with pytest.raises(sr.NoAvailablePodError, match="maintenance"):
        f.gw.compute_linked_pod("", "victim", SVC)

    # None refuses; a wrong type or an index out of range is INTERNAL.
    answers: list[Any] = [None, "1", True, -1, 3, 1.0]
    errors: list[type[sr.StatefulRouteError]] = [sr.NoAvailablePodError] + [sr.InternalError] * 5
    for answer, error in zip(answers, errors):
        f.gw.set_service_placement(SVC, lambda c, r, a=answer: a)
        with pytest.raises(error):
            f.gw.compute_linked_pod("", "victim", SVC)
        with pytest.raises(error):
            f.gw.best_pod(SVC)
    assert f.store.get_link(NS, "victim", SVC) is None

    # The asyncio driver raises the same typed error from its runtime thread.
    async def main() -> None:
        gw = sr.ClientDriver(f.store, info(1, "gw"), f.config)
        await gw.init()
        gw.set_service_placement(SVC, raises)
        with pytest.raises(sr.InternalError, match="ValueError"):
            await gw.compute_linked_pod("", "victim2", SVC)
        await gw.close()

    asyncio.run(main())
    assert f.store.get_link(NS, "victim2", SVC) is None
    # Back to a built-in: placements work again.
    f.gw.set_service_placement(SVC, "p2c")
    assert f.gw.compute_linked_pod("", "victim", SVC) in (0, 1, 2)


def test_policies_run_from_many_threads(fleet: Any) -> None:
    f = fleet()
    f.gw.set_service_placement(SVC, lambda c, r: 1)
    results: list[int] = []

    def work(t: int) -> None:
        results.extend(f.gw.compute_linked_pod("", f"t{t}-{i}", SVC) for i in range(50))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 200


# --- built-in policies by name ---------------------------------------------------------------


def test_rendezvous_by_name_is_the_highest_score(fleet: Any) -> None:
    f = fleet(5)
    f.gw.set_service_placement(SVC, "rendezvous")
    got = f.place(200, "rv")
    for i in range(200):
        uid = f"rv{i}"
        want = max(range(5), key=lambda p: (rendezvous_score(SVC, uid, p), p))
        assert f.gw.get_linked_in_cache("", uid, SVC) == want, uid
    assert len(got) == 5  # hashing spreads users over every pod
    # A second gateway with the same policy agrees before it reads any link.
    other = blocking.ClientDriver(f.store, info(1, "gw"), fast_config(placement="rendezvous"))
    other.init()
    try:
        eventually("pods seen", lambda: len(other.routable_pods(SVC)) == 5)
        for i in range(20):
            want = max(range(5), key=lambda p: (rendezvous_score(SVC, f"new{i}", p), p))
            assert other.compute_linked_pod("", f"new{i}", SVC) == want
    finally:
        other.close()


def test_rendezvous_skips_pods_above_the_load_bound(fleet: Any) -> None:
    f = fleet(3, load_range=100_000)
    f.pods[0].set_load_state(900)
    eventually(
        "pod 0's load is seen",
        lambda: f.gw.refresh_service(SVC) is None and f.gw.pod_states(SVC)[0].load == 900,
    )
    # Average 300; bound 1.25 x 300 = 375: pod 0 is never chosen.
    f.gw.set_service_placement(SVC, "rendezvous", load_factor=1.25)
    assert 0 not in f.place(100, "b")
    # A factor large enough admits it again (5 x 300 = 1500 > 900).
    f.gw.set_service_placement(SVC, "rendezvous", load_factor=5.0)
    assert f.place(100, "c")[0] > 0


def test_weighted_by_name_follows_published_weights(fleet: Any) -> None:
    f = fleet(3, placement="weighted")
    assert f.pods[1].get_weight() == 100
    f.pods[1].set_weight(0)
    f.pods[2].set_weight(300)
    assert f.pods[2].get_weight() == 300

    seen: list[list[int]] = []
    f.gw.set_service_placement(SVC, lambda c, r: seen.append([x.weight for x in c]) or 0)
    eventually(
        "the weights are published",
        lambda: (
            f.gw.refresh_service(SVC) is None
            and f.gw.compute_linked_pod("", f"probe{len(seen)}", SVC) == 0
            and seen[-1] == [100, 0, 300]
        ),
    )
    f.gw.set_service_placement(SVC, "weighted")
    got = f.place(400, "w")
    assert got[1] == 0
    # 100 : 300 within tolerance.
    assert 0.15 < got[0] / 400 < 0.35, got
    with pytest.raises(sr.InvalidArgumentError):
        f.pods[0].set_weight(-1)
    with pytest.raises(sr.InvalidArgumentError):
        f.pods[0].set_weight(True)


# --- custom load calculation -----------------------------------------------------------------


def test_a_python_load_calculator_changes_where_new_users_go(fleet: Any) -> None:
    f = fleet(2, load_range=10)
    inputs: list[sr.LoadInput] = []

    def queue_load(i: sr.LoadInput) -> int:
        inputs.append(i)
        return i.load + int(i.signals.get("queue", 0))

    # Both pods report load 5; pod 0's queue makes it 1005, outside load_range of pod 1.
    for p in f.pods:
        p.set_load_state(5)
        p.set_load_calculator(queue_load)
    f.pods[0].set_load_signal("queue", 1000)
    f.pods[1].set_load_signal("queue", 0.4)
    assert f.pods[0].weighted_load() == 1005 and f.pods[0].try_weighted_load() == 1005
    eventually(
        "pod 0 publishes 1005",
        lambda: (
            f.gw.refresh_service(SVC) is None
            and [s.load for s in f.gw.pod_states(SVC)] == [1005, 5]
        ),
    )
    assert f.place(40) == {1: 40}
    i = inputs[-1]
    assert isinstance(i.load, int) and i.cpu_factor == 0.0 and i.cpu_percent == 0.0
    assert set(i.signals) == {"queue"}
    assert "LoadInput(" in repr(i)

    # Pod 1's queue grows instead: new users move to pod 0.
    f.pods[0].set_load_signal("queue", 0)
    f.pods[1].set_load_signal("queue", 2000)
    eventually(
        "the loads swap",
        lambda: (
            f.gw.refresh_service(SVC) is None
            and [s.load for s in f.gw.pod_states(SVC)] == [5, 2005]
        ),
    )
    assert f.place(40, "later") == {0: 40}

    # A float is rounded; a raising calculator falls back to SPEC's formula (load 5 here).
    f.pods[0].set_load_calculator(lambda i: 41.6)
    assert f.pods[0].weighted_load() == 42

    def broken(i: sr.LoadInput) -> int:
        raise RuntimeError("sensor down")

    f.pods[0].set_load_calculator(broken)
    assert f.pods[0].weighted_load() == 5
    with pytest.raises(sr.InternalError, match="load callback failed: RuntimeError: sensor down"):
        f.pods[0].try_weighted_load()
    for bad in (-1, 2**32, "7", None, float("nan")):
        f.pods[0].set_load_calculator(lambda i, b=bad: b)
        with pytest.raises(sr.InternalError):
            f.pods[0].try_weighted_load()
        assert f.pods[0].weighted_load() == 5
    # The pod keeps publishing (the formula) while its calculator fails.
    f.pods[0].set_load_calculator(broken)
    f.pods[0].set_load_state(7)
    eventually(
        "the formula is published",
        lambda: f.gw.refresh_service(SVC) is None and f.gw.pod_states(SVC)[0].load == 7,
    )
    f.pods[0].set_load_calculator(None)
    assert f.pods[0].try_weighted_load() == 7


def test_a_load_calculator_runs_on_an_asyncio_pod(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        cfg = fast_config()
        pod = sr.ServerDriver(store, info(0), cfg)
        threads: list[str] = []

        def calc(i: sr.LoadInput) -> int:
            threads.append(threading.current_thread().name)
            return 77

        pod.set_load_calculator(calc)
        await pod.start()
        await pod.set_weight(50)
        assert pod.get_weight() == 50
        states = await store.pod_states(NS, SVC)
        assert [s.load for s in states] == [77]
        await pod.stop()
        assert threads

    asyncio.run(main())


# --- arguments and config --------------------------------------------------------------------


def test_placement_arguments_are_checked() -> None:
    store = blocking.Store.memory()
    gw = blocking.ClientDriver(store, info(0, "gw"))
    with pytest.raises(sr.InvalidArgumentError, match="placement"):
        gw.set_service_placement(SVC, "fastest")
    with pytest.raises(sr.InvalidArgumentError, match="placement"):
        gw.set_service_placement(SVC, 3)  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentError, match="load_factor"):
        gw.set_service_placement(SVC, "p2c", load_factor=2.0)
    with pytest.raises(sr.InvalidArgumentError, match="load_factor"):
        gw.set_service_placement(SVC, lambda c, r: 0, load_factor=2.0)
    # An argument of a method: even the core's range check is InvalidArgumentError here.
    with pytest.raises(sr.InvalidArgumentError, match="load_factor"):
        gw.set_service_placement(SVC, "rendezvous", load_factor=0.5)
    with pytest.raises(sr.InvalidArgumentError, match="service"):
        gw.set_service_placement("bad service", "random")
    for name in ("p2c", "random", "round_robin", "rendezvous", "weighted"):
        gw.set_service_placement(SVC, name)
        assert sr.BaseConfig(placement=name).placement == name
    pod = blocking.ServerDriver(store, info(0))
    with pytest.raises(sr.InvalidArgumentError, match="calculator"):
        pod.set_load_calculator(5)  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentError, match="value"):
        pod.set_load_signal("queue", float("inf"))
    with pytest.raises(sr.InvalidArgumentError, match="value"):
        pod.set_load_signal("queue", "1")  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentError, match="name"):
        pod.set_load_signal("not a name", 1)


def test_new_config_keywords() -> None:
    c = sr.BaseConfig(placement="rendezvous", placement_load_factor=2, serve_stale_seconds=0)
    assert (c.placement, c.placement_load_factor, c.serve_stale_seconds) == ("rendezvous", 2.0, 0)
    d = sr.BaseConfig()
    assert (d.placement, d.placement_load_factor, d.serve_stale_seconds) == ("p2c", None, 60.0)
    assert "serve_stale_seconds=60" in repr(d)
    assert sr.BaseConfig(placement="rendezvous").placement_load_factor == 1.25
    for kw in (
        dict(serve_stale_seconds=-1),
        dict(serve_stale_seconds=float("inf")),
        dict(serve_stale_seconds="1"),
        dict(placement="fastest"),
        dict(placement=1),
        dict(placement="p2c", placement_load_factor=2),
        dict(placement_load_factor=2),
        dict(placement="rendezvous", placement_load_factor=0.9),
    ):
        with pytest.raises(sr.InvalidConfigError):
            sr.BaseConfig(**kw)  # type: ignore[arg-type]


def test_slow_start_seconds_keyword() -> None:
    d = sr.BaseConfig()
    assert d.slow_start_seconds is None, "None: one update period"
    assert "slow_start_seconds=None" in repr(d)
    c = sr.BaseConfig(slow_start_seconds=2.5)
    assert c.slow_start_seconds == 2.5 and "slow_start_seconds=2.5" in repr(c)
    assert sr.BaseConfig(slow_start_seconds=0).slow_start_seconds == 0.0
    assert sr.BaseConfig(slow_start_seconds=86_400).slow_start_seconds == 86_400.0
    store = sr.Store.memory()
    i = sr.ServerInfo(namespace="ns", service_name="room", pod_index=0)
    assert sr.ClientDriver(store, i, c).config.slow_start_seconds == 2.5
    assert blocking.ServerDriver(store, i, c).config.slow_start_seconds == 2.5
    for v in (-1, 86_400.5, float("nan"), float("inf"), "1", True):
        with pytest.raises(sr.InvalidConfigError) as e:
            sr.BaseConfig(slow_start_seconds=v)  # type: ignore[arg-type]
        assert "slow_start_seconds" in str(e.value) and e.value.code == "INVALID_CONFIG"


@pytest.mark.parametrize("slow_start,pod1_min,pod1_max", [(0, 15, 45), (86_400, 0, 3)])
def test_slow_start_seconds_reaches_placement(
    slow_start: float, pod1_min: int, pod1_max: int
) -> None:
    """A gateway sees pod 1 turn routable after its first read of the service: with slow start
    off pod 1 takes about half of 60 new users at once; ramping over a day it takes (almost)
    none in the first seconds (each placement includes it with probability elapsed / 86 400)."""
    store = blocking.Store.memory()
    quiet = sr.BaseConfig(service_state_update_period_seconds=30, cpu_factor=0)
    cfg = sr.BaseConfig(
        service_state_update_period_seconds=30, cpu_factor=0, slow_start_seconds=slow_start
    )
    svc = "room"
    p0 = blocking.ServerDriver(
        store, sr.ServerInfo(namespace="ns", service_name=svc, pod_index=0), quiet
    )
    p1 = blocking.ServerDriver(
        store, sr.ServerInfo(namespace="ns", service_name=svc, pod_index=1), quiet
    )
    p0.start()
    with blocking.ClientDriver(
        store, sr.ServerInfo(namespace="ns", service_name="gw", pod_index=0), cfg
    ) as c:
        assert c.routable_pods(svc) == [0], "the first read: pod 0 only"
        p1.start()
        c.refresh_service(svc)
        assert c.routable_pods(svc) == [0, 1]
        placed = [0, 0]
        for n in range(60):
            placed[c.compute_linked_pod("ns", f"u{n}", svc)] += 1
        assert pod1_min <= placed[1] <= pod1_max, placed
    p0.stop()
    p1.stop()


def test_store_tls_ca_keyword_is_checked(redis_url: str) -> None:
    with pytest.raises(sr.InvalidConfigError, match="tls_ca_cert_pem"):
        blocking.Store.connect(redis_url, tls_ca_cert_pem=5)  # type: ignore[arg-type]
    for kw in ("connect_cluster", "connect_sentinel"):
        args: tuple[Any, ...] = ([redis_url],) if kw == "connect_cluster" else ([redis_url], "m")
        with pytest.raises(sr.InvalidConfigError, match="tls_ca_cert_pem"):
            getattr(blocking.Store, kw)(*args, tls_ca_cert_pem=5)
        with pytest.raises(sr.InvalidArgumentError, match="urls"):
            getattr(blocking.Store, kw)(redis_url, *args[1:])
