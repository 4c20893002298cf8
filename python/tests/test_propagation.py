"""Change propagation (SPEC section 11) through the package: a move, a removal or a drain made
by any writer reaches every gateway sharing the store, within milliseconds on Redis and before
the writing call returns on the memory store, with the DEFAULT config (240 s cache, 30 s
refresh: without propagation a gateway would keep its answer for minutes).

"Separate stores" are separate Store objects: on Redis separate connections (each with its own
event subscriber); on memory, wrappers of one in-memory store (``blocking.Store(store)``), the
only way two Store objects share data there. Every wait is a poll with a deadline; where a test
must show that something did NOT happen, it waits for a later event that did (a barrier), not
for a fixed time.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any, Callable

import pytest

import stateful_route as sr
from conftest import NS, SVC, Env, aeventually, eventually, info
from stateful_route import blocking

WITHIN = 1.0  # seconds: the README's bound for every gateway to follow a change


def fields(c: sr.LinkChange) -> tuple[str, str, str, int | None, bool]:
    return (c.namespace, c.service, c.uid, c.pod, c.persistent)


class Stores:
    """Separate Store objects on one test's data (see the module's docstring)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.first = env.store()

    def blocking(self, **kw: Any) -> blocking.Store:
        if self.env.kind == "memory":
            assert not kw, "a memory store's settings are its own"
            return blocking.Store(self.first)
        return blocking.Store.connect(self.env.url, key_prefix=self.env.prefix, **kw)

    async def asyncio(self) -> sr.Store:
        if self.env.kind == "memory":
            return sr.Store(self.first)
        return await sr.Store.connect(self.env.url, key_prefix=self.env.prefix)


def cached(gw: blocking.ClientDriver, uid: str) -> int:
    """Computes `uid` on `gw`, checks the answer is in its cache, and returns it (right after
    `init()` too: init returns only once the first subscription has been handled)."""
    pod = gw.compute_linked_pod(NS, uid, SVC)
    assert gw.get_linked_in_cache(NS, uid, SVC) == pod, f"{uid} cached"
    return pod


def barrier(
    writer: blocking.ServerDriver, gw: blocking.ClientDriver, seen: list[sr.LinkChange]
) -> None:
    """Moves a user nobody else uses and waits until `gw`'s listener (appending to `seen`)
    got that change: every event published before it has been delivered by then."""
    uid = f"barrier-{time.monotonic_ns()}"
    assert writer.set_linked_pod(NS, uid, SVC, 1) is None  # a new link: no event
    assert writer.set_linked_pod(NS, uid, SVC, 0) == 1  # a move: an event
    eventually("the barrier's event", lambda: any(c.uid == uid for c in seen), within=WITHIN)


def pods(store: blocking.Store, n: int = 2) -> list[blocking.ServerDriver]:
    servers = [blocking.ServerDriver(store, info(i)) for i in range(n)]
    for s in servers:
        s.start()
    return servers


def stop(servers: list[blocking.ServerDriver]) -> None:
    for s in servers:
        s.stop()


def test_a_persistent_move_reaches_every_gateway(env: Env) -> None:
    stores = Stores(env)
    servers = pods(stores.first)
    seen_a: list[sr.LinkChange] = []
    seen_b: list[sr.LinkChange] = []
    with (
        blocking.ClientDriver(stores.blocking(), info(0, "gw")) as a,
        blocking.ClientDriver(stores.blocking(), info(1, "gw")) as b,
    ):
        assert a.config.user_link_info_cache_time_seconds == 240
        assert a.config.service_state_update_period_seconds == 30
        a.on_link_changed(seen_a.append)
        b.on_link_changed(seen_b.append)
        p = cached(a, "u")
        assert cached(b, "u") == p
        other = 1 - p
        assert servers[other].set_linked_pod(NS, "u", SVC, other) == p
        if env.kind == "memory":
            assert a.get_linked_in_cache(NS, "u", SVC) is None, "dropped before the move returned"
            assert b.get_linked_in_cache(NS, "u", SVC) is None
        for gw in (a, b):
            eventually(
                "the gateway answers the new pod",
                lambda gw=gw: gw.compute_linked_pod(NS, "u", SVC) == other,
                within=WITHIN,
            )
        want = (NS, SVC, "u", other, True)
        eventually("B's listener got the move", lambda: want in map(fields, seen_b), within=WITHIN)
        assert [fields(c) for c in seen_b] == [want]
        eventually("A's listener got the move", lambda: want in map(fields, seen_a), within=WITHIN)
    stop(servers)


def test_logout_then_placement_elsewhere(env: Env) -> None:
    stores = Stores(env)
    servers = pods(stores.first)
    seen: list[sr.LinkChange] = []
    with (
        blocking.ClientDriver(stores.blocking(), info(0, "gw")) as a,
        blocking.ClientDriver(stores.blocking(), info(1, "gw")) as b,
    ):
        a.on_link_changed(seen.append)
        p = cached(a, "u")
        other = 1 - p
        assert servers[p].remove_linked_pod(NS, "u", SVC, 0) is True  # the user logs out
        link = b.set_linked_pod_if_absent(NS, "u", SVC, other, 300)  # and comes back elsewhere
        assert (link.pod_index, link.persistent) == (other, False)
        eventually(
            "A answers the new pod",
            lambda: a.compute_linked_pod(NS, "u", SVC) == other,
            within=WITHIN,
        )
        barrier(servers[0], a, seen)
        # A new user's link (B's placement) changes no link: only the removal was an event.
        assert [fields(c) for c in seen if c.uid == "u"] == [(NS, SVC, "u", None, False)]
    stop(servers)


def test_a_drain_reaches_a_gateway_with_the_default_period(env: Env) -> None:
    stores = Stores(env)
    servers = pods(stores.first)
    changes: list[sr.RoutingStateChange] = []
    with blocking.ClientDriver(stores.blocking(), info(0, "gw")) as gw:
        assert gw.config.service_state_update_period_seconds == 30
        gw.on_routing_state_changed(changes.append)
        assert gw.routable_pods(SVC) == [0, 1]
        servers[1].set_routing_state(sr.RoutingState.DENY_NEW_CALL)
        eventually(
            "the gateway sees DENY_NEW_CALL",
            lambda: gw.is_pod_routable(SVC, 1) is False,
            within=WITHIN,
        )
        assert gw.is_pod_alive(SVC, 1) is True and gw.routable_pods(SVC) == [0]
        states = {s.pod_index: s.routing_state for s in gw.pod_states(SVC)}
        assert states == {0: sr.RoutingState.READY, 1: sr.RoutingState.DENY_NEW_CALL}
        eventually("the change reported", lambda: bool(changes), within=WITHIN)
        assert (changes[-1].pod_index, changes[-1].new) == (1, sr.RoutingState.DENY_NEW_CALL)
    stop(servers)


def test_link_listener_lifecycle(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    stores = Stores(env)
    mover = blocking.ServerDriver(stores.first, info(0))
    removed: list[sr.LinkChange] = []
    good: list[sr.LinkChange] = []
    threads: list[int] = []
    calls = 0

    def bad(change: sr.LinkChange) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError(f"listener failed on {change.uid}")

    def keep(change: sr.LinkChange) -> None:
        threads.append(threading.get_ident())
        good.append(change)

    with blocking.ClientDriver(stores.blocking(), info(0, "gw")) as gw:
        with pytest.raises(sr.InvalidArgumentError, match="callback"):
            gw.on_link_changed(42)  # type: ignore[arg-type]
        lid = gw.on_link_changed(removed.append)
        assert gw.remove_link_listener(lid) is True
        assert gw.remove_link_listener(lid) is False
        assert gw.remove_link_listener(12345) is False
        first = gw.on_link_changed(bad)
        assert gw.on_link_changed(keep) not in (lid, first), "ids are not reused"
        for uid in ("u1", "u2"):
            mover.set_linked_pod(NS, uid, SVC, 1)
            mover.set_linked_pod(NS, uid, SVC, 2)
            eventually(f"{uid}'s move reported", lambda: any(c.uid == uid for c in good))
        assert [fields(c) for c in good] == [(NS, SVC, u, 2, True) for u in ("u1", "u2")]
        assert removed == [], "a removed listener is not called"
        eventually("both failures reported", lambda: len(unraisable) == 2)
        assert calls == 2
        for u, hook in zip(("u1", "u2"), unraisable):
            assert isinstance(hook.exc_value, RuntimeError)
            assert str(hook.exc_value) == f"listener failed on {u}"
            assert hook.object is bad
        if env.kind == "memory":
            assert set(threads) == {threading.get_ident()}, "inside the writing call"
        else:
            assert threading.get_ident() not in threads, "on a library thread"
        change = good[0]
        assert change == good[0] and change != good[1]
        assert repr(change) == (
            f"LinkChange(namespace='{NS}', service='{SVC}', uid='u1', pod=2, persistent=True)"
        )


def test_asyncio_link_listener_runs_on_the_event_loop(env: Env) -> None:
    async def main() -> None:
        stores = Stores(env)
        mover = sr.ServerDriver(await stores.asyncio(), info(0))
        seen: list[tuple[sr.LinkChange, int]] = []
        async with sr.ClientDriver(await stores.asyncio(), info(0, "gw")) as gw:
            gw.on_link_changed(lambda c: seen.append((c, threading.get_ident())))
            await mover.set_linked_pod(NS, "u", SVC, 3)  # a new link: no event
            await gw.set_cache(NS, "u", SVC, 3)
            await mover.set_linked_pod(NS, "u", SVC, 4)

            async def reported() -> bool:
                return bool(seen)

            await aeventually("the move reported", reported, within=WITHIN)
            assert [(fields(c), t) for c, t in seen] == [
                ((NS, SVC, "u", 4, True), threading.get_ident())
            ]
            assert gw.get_linked_in_cache(NS, "u", SVC) is None

    asyncio.run(main())


def test_memory_listener_inside_a_blocking_writer_call_cannot_deadlock(env: Env) -> None:
    """On the memory store a listener runs inside the writer's call, on the writer's thread:
    the writer waits with the GIL released, so the listener takes it (also while other Python
    threads compete for it), may call the library's non-blocking methods, and a blocking call
    from it fails with InvalidArgumentError instead of hanging. Checked on Redis too (there
    the listener runs on a library thread)."""
    stores = Stores(env)
    mover = blocking.ServerDriver(stores.first, info(0))
    unraisable: list[Any] = []
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    stop_spinning = threading.Event()

    def spin() -> None:  # competes for the GIL all along
        n = 0
        while not stop_spinning.is_set():
            n += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        with blocking.ClientDriver(stores.blocking(), info(0, "gw")) as gw:
            seen: list[tuple[str, int | None, int]] = []

            def listener(c: sr.LinkChange) -> None:
                seen.append((c.uid, gw.get_linked_in_cache(NS, c.uid, SVC), threading.get_ident()))
                if c.uid == "blocking-call":
                    gw.get_linked_pod(NS, c.uid, SVC)  # a blocking call: refused

            gw.on_link_changed(listener)
            results: list[Any] = []

            def writer() -> None:
                for i in range(50):
                    mover.set_linked_pod(NS, f"u{i}", SVC, 1)
                    results.append(mover.set_linked_pod(NS, f"u{i}", SVC, 2))
                mover.set_linked_pod(NS, "blocking-call", SVC, 1)
                results.append(mover.set_linked_pod(NS, "blocking-call", SVC, 2))

            t = threading.Thread(target=writer)
            t.start()
            t.join(timeout=30)
            assert not t.is_alive(), "deadlock: the writer never returned"
            assert results == [1] * 51
            eventually("every change reported", lambda: len(seen) == 51)
            assert [u for u, _, _ in seen] == [f"u{i}" for i in range(50)] + ["blocking-call"]
            assert all(pod is None for _, pod, _ in seen), "dropped before the listener runs"
            if env.kind == "memory":
                assert {th for _, _, th in seen} == {t.ident}, "on the writer's thread"
            eventually("the refused blocking call reported", lambda: len(unraisable) == 1)
            assert isinstance(unraisable[0].exc_value, sr.InvalidArgumentError)
            assert "library's own threads" in str(unraisable[0].exc_value)
    finally:
        stop_spinning.set()
        spinner.join()
        sys.unraisablehook = old_hook


def test_without_propagation_a_gateway_keeps_its_answer(env: Env) -> None:
    if env.kind == "memory":
        # Propagation belongs to a memory store itself: the control is the same sequence on a
        # propagating memory store.
        for propagation in (False, True):
            store = blocking.Store.memory(key_prefix=env.prefix, propagation=propagation)
            servers = pods(store)
            with blocking.ClientDriver(store, info(0, "gw")) as gw:
                seen: list[sr.LinkChange] = []
                gw.on_link_changed(seen.append)
                p = cached(gw, "u")
                servers[1 - p].set_linked_pod(NS, "u", SVC, 1 - p)
                want = None if propagation else p
                assert gw.get_linked_in_cache(NS, "u", SVC) == want, propagation
                assert gw.compute_linked_pod(NS, "u", SVC) == (1 - p if propagation else p)
                assert len(seen) == (1 if propagation else 0)
            stop(servers)
        return
    stores = Stores(env)
    servers = pods(stores.first)
    control_seen: list[sr.LinkChange] = []
    with (
        blocking.ClientDriver(stores.blocking(propagation=False), info(0, "gw")) as quiet,
        blocking.ClientDriver(stores.blocking(), info(1, "gw")) as control,
    ):
        quiet_seen: list[sr.LinkChange] = []
        quiet.on_link_changed(quiet_seen.append)
        control.on_link_changed(control_seen.append)
        p = cached(quiet, "u")
        assert cached(control, "u") == p
        servers[1 - p].set_linked_pod(NS, "u", SVC, 1 - p)
        assert quiet.get_linked_in_cache(NS, "u", SVC) == p, "right after the move"
        eventually(
            "the propagating gateway follows",
            lambda: control.compute_linked_pod(NS, "u", SVC) == 1 - p,
            within=WITHIN,
        )
        assert quiet.get_linked_in_cache(NS, "u", SVC) == p, "after the control followed"
        assert quiet.compute_linked_pod(NS, "u", SVC) == p, "the TTL rule alone"
        assert quiet_seen == []
        # A writer on a store without propagation publishes nothing: the control keeps its
        # answer (a later published move is the barrier).
        writer = blocking.ServerDriver(stores.blocking(propagation=False), info(0))
        assert writer.set_linked_pod(NS, "u", SVC, p) == 1 - p
        barrier(servers[0], control, control_seen)
        assert control.get_linked_in_cache(NS, "u", SVC) == 1 - p
        assert [c.uid for c in control_seen if c.uid == "u"] == ["u"], "only the first move"
    stop(servers)


def _fresh_gateway_caches_its_first_answer(make_store: Callable[[int], blocking.Store]) -> int:
    misses = 0
    for i in range(40):
        store = make_store(i)
        with (
            blocking.ServerDriver(store, info(0)),
            blocking.ClientDriver(store, info(0, "gw")) as gw,
        ):
            gw.compute_linked_pod(NS, "u", SVC)
            misses += gw.get_linked_in_cache(NS, "u", SVC) is None
    return misses


def test_first_answer_after_init_is_cached(env: Env) -> None:
    """`init()` returns only after the first subscription's handling (which empties the cache),
    so the first answer computed after it stays cached."""
    url, prefix = env.url, env.prefix
    misses = _fresh_gateway_caches_its_first_answer(
        (lambda i: blocking.Store.memory(key_prefix=f"{prefix}-{i}"))
        if env.kind == "memory"
        else (lambda i: blocking.Store.connect(url, key_prefix=f"{prefix}-{i}"))
    )
    assert misses == 0, f"{misses} of 40 first answers were not cached"
