"""Driver behaviour through Python: placement, concurrency, draining, shutdown, link operations,
context managers, listeners and logging. Every test runs on memory and on Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import stateful_route as sr
from conftest import NS, SVC, Env, aeventually, eventually, fast_config, info
from stateful_route import blocking


def test_readme_example(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        pod_info = sr.ServerInfo(namespace="default", service_name="room", pod_index=0)
        server = sr.ServerDriver(
            store, pod_info, sr.BaseConfig(service_state_update_period_seconds=30)
        )
        await server.start()
        await server.set_load_state(150)
        client = sr.ClientDriver(store, pod_info)
        await client.init()
        assert await client.compute_linked_pod("default", "user123", "room") == 0
        assert await client.compute_linked_pod("", "user123", "room") == 0
        assert client.get_linked_in_cache("default", "user123", "room") == 0
        link = await store.get_link("default", "user123", "room")
        assert link is not None and link.pod_index == 0 and not link.persistent
        await client.close()
        await server.stop()

    asyncio.run(main())


def test_pod_zero_is_routable_and_links_are_sticky_blocking(env: Env) -> None:
    store = env.store()
    cfg = fast_config()
    with (
        blocking.ServerDriver(store, info(0), cfg),
        blocking.ClientDriver(store, info(0), cfg) as c,
    ):
        assert c.compute_linked_pod(NS, "u1", SVC) == 0
        assert c.compute_cached("", "u1", SVC) == 0
        link = store.get_link(NS, "u1", SVC)
        assert link is not None and link.pod_index == 0 and not link.persistent
        with blocking.ClientDriver(store, info(0), cfg) as other:
            assert other.get_linked_in_cache(NS, "u1", SVC) is None
            assert other.compute_linked_pod(NS, "u1", SVC) == 0


def test_placement_prefers_light_pods(env: Env) -> None:
    store = env.store()
    cfg = fast_config(load_range=100)
    servers = [blocking.ServerDriver(store, info(i), cfg) for i in range(3)]
    for s, load in zip(servers, [10, 20, 900]):
        s.set_load_state(load)
        s.start()
    with blocking.ClientDriver(store, info(0), cfg) as c:
        counts: dict[int, int] = {}
        for i in range(300):
            p = c.compute_linked_pod(NS, f"u{i}", SVC)
            counts[p] = counts.get(p, 0) + 1
        assert 2 not in counts, counts
        assert abs(counts[0] - counts[1]) < 80, counts
    for s in servers:
        s.stop()


def test_concurrent_asyncio_tasks_on_one_new_user_agree(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        cfg = fast_config(placement="random")
        servers = [sr.ServerDriver(store, info(i), cfg) for i in range(4)]
        for s in servers:
            await s.start()
        gateways = [sr.ClientDriver(store, info(0), cfg) for _ in range(4)]
        for g in gateways:
            await g.init()
        for round_ in range(5):
            uid = f"hot-{round_}"
            got = await asyncio.gather(
                *(gateways[t % 4].compute_linked_pod(NS, uid, SVC) for t in range(64))
            )
            assert len(set(got)) == 1, got
            link = await store.get_link(NS, uid, SVC)
            assert link is not None and link.pod_index == got[0]
        links = [k for k in env.keys(store) if ":lk:" in k]
        assert len(links) == 5, links
        for s in servers:
            await s.stop()

    asyncio.run(main())


def test_concurrent_threads_on_one_new_user_agree(env: Env) -> None:
    store = env.store()
    cfg = fast_config(placement="random")
    servers = [blocking.ServerDriver(store, info(i), cfg) for i in range(4)]
    for s in servers:
        s.start()
    gateways = [blocking.ClientDriver(store, info(0), cfg) for _ in range(4)]
    for g in gateways:
        g.init()
    for round_ in range(3):
        uid = f"thr-{round_}"
        barrier = threading.Barrier(32)
        got: list[Any] = [None] * 32

        def work(t: int, barrier: threading.Barrier, got: list[Any], uid: str) -> None:
            barrier.wait()
            got[t] = gateways[t % 4].compute_linked_pod(NS, uid, SVC)

        threads = [threading.Thread(target=work, args=(t, barrier, got, uid)) for t in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(set(got)) == 1 and got[0] is not None, got
        link = store.get_link(NS, uid, SVC)
        assert link is not None and link.pod_index == got[0]
    for s in servers:
        s.stop()


def test_draining_keeps_users_and_takes_no_new_ones(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        cfg = fast_config()
        p0 = sr.ServerDriver(store, info(0), cfg)
        p1 = sr.ServerDriver(store, info(1), cfg)
        await p1.set_load_state(1000)
        await p0.start()
        await p1.start()
        c = sr.ClientDriver(store, info(0), cfg)
        seen: list[tuple[sr.RoutingStateChange, bool]] = []
        loop_thread = threading.get_ident()
        async with c:
            c.on_routing_state_changed(
                lambda ch: seen.append((ch, threading.get_ident() == loop_thread))
            )
            for i in range(10):
                assert await c.compute_linked_pod(NS, f"old{i}", SVC) == 0
            await p0.set_routing_state(sr.RoutingState.DENY_NEW_CALL)
            assert p0.get_routing_state() is sr.RoutingState.DENY_NEW_CALL
            states = await store.pod_states(NS, SVC)
            assert states[0].routing_state is sr.RoutingState.DENY_NEW_CALL, "published at once"
            await c.refresh_service(SVC)
            assert await c.routable_pods(SVC) == [1]
            assert await c.alive_pods(SVC) == [0, 1]
            for i in range(10):
                uid = f"old{i}"
                assert await c.compute_linked_pod(NS, uid, SVC) == 0, "cached user stays"
                assert c.cache_expired(NS, uid, SVC) == 0
                assert await c.compute_linked_pod(NS, uid, SVC) == 0, "linked user stays"
            for i in range(10):
                assert await c.compute_linked_pod(NS, f"new{i}", SVC) == 1

            async def reported() -> bool:
                return any(
                    ch.pod_index == 0
                    and ch.old is sr.RoutingState.READY
                    and ch.new is sr.RoutingState.DENY_NEW_CALL
                    for ch, _ in seen
                )

            await aeventually("a DENY_NEW_CALL change reported", reported)
            assert all(on_loop for _, on_loop in seen), "listener runs on the event loop"
        await p0.stop()
        await p1.stop()

    asyncio.run(main())


def test_shutdown_moves_temporary_links_and_reports_persistent_ones(env: Env) -> None:
    store = env.store()
    cfg = fast_config()
    p0 = blocking.ServerDriver(store, info(0), cfg)
    p1 = blocking.ServerDriver(store, info(1), cfg)
    p1.set_load_state(1000)
    p0.start()
    p1.start()
    with blocking.ClientDriver(store, info(0), cfg) as c:
        assert c.compute_linked_pod(NS, "temp", SVC) == 0
        assert p0.set_linked_pod(NS, "owned", SVC, 0) is None
        assert c.compute_linked_pod(NS, "owned", SVC) == 0
        p0.stop()
        p0.stop()  # idempotent
        assert store.pod_states(NS, SVC)[0].routing_state is sr.RoutingState.SHUTDOWN
        assert c.get_workload_state(SVC) == "SHUTDOWN"
        c.refresh_service(SVC)
        assert c.alive_pods(SVC) == [1]
        assert c.compute_linked_pod(NS, "temp", SVC) == 1, "a temporary link moves"
        with pytest.raises(sr.PodUnavailableError) as e:
            c.compute_linked_pod(NS, "owned", SVC)
        assert e.value.code == "POD_UNAVAILABLE" and e.value.pod_index == 0
        owned = store.get_link(NS, "owned", SVC)
        assert owned is not None and owned.pod_index == 0 and owned.persistent, "left alone"
        with pytest.raises(sr.ClosedError):
            p0.set_load_state(1)
        with pytest.raises(sr.ClosedError):
            p0.start()
        with pytest.raises(sr.ClosedError):
            p0.set_linked_pod(NS, "u", SVC, 0)
    p1.stop()


def test_drain_time_keeps_deny_new_call_until_shutdown(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        server = sr.ServerDriver(store, info(0), fast_config(drain_seconds=0.5))
        await server.start()
        stopping = asyncio.ensure_future(server.stop())

        async def draining() -> bool:
            states = await store.pod_states(NS, SVC)
            return states[0].routing_state is sr.RoutingState.DENY_NEW_CALL

        await aeventually("DENY_NEW_CALL while draining", draining)
        assert not stopping.done()
        await stopping
        assert (await store.pod_states(NS, SVC))[0].routing_state is sr.RoutingState.SHUTDOWN

    asyncio.run(main())


def test_server_link_operations(env: Env) -> None:
    def dropped(c: blocking.ClientDriver, uid: str) -> None:
        if env.kind == "memory":
            assert c.get_linked_in_cache(NS, uid, SVC) is None, "dropped at once"
        else:
            what = f"the removal of {uid}'s link reaches the cache"
            eventually(what, lambda: c.get_linked_in_cache(NS, uid, SVC) is None, within=1.0)

    store = env.store()
    cfg = fast_config()
    with (
        blocking.ServerDriver(store, info(2), cfg) as s,
        blocking.ClientDriver(store, info(0), cfg) as c,
    ):
        assert s.set_linked_pod("", "u", SVC, 2) is None
        o = s.try_set_linked_pod(NS, "u", SVC, 3)
        assert (o.accepted, o.owner, o.previous) == (False, 2, 2)
        assert c.get_link_service(NS, "u") == {SVC: 2}
        assert c.get_linked_pod_in_cache_or_if_persist(NS, "u", SVC) == 2
        assert s.remove_linked_pod_with_id(NS, "u", SVC, 3) is False
        assert s.remove_linked_pod_with_id(NS, "u", SVC, 2) is True
        assert c.get_linked_pod_not_cache(NS, "u", SVC) is None
        # The removal reaches the gateway (propagation): its entry is dropped, before the
        # remove returns on the memory store, within milliseconds on Redis.
        dropped(c, "u")
        assert c.cache_expired(NS, "u", SVC) is None
        assert c.get_linked_pod(NS, "u", SVC) is None
        c.set_cache(NS, "u", SVC, 2)
        assert c.cache_expired(NS, "u", SVC) == 2, "cache_expired returns what it held"
        link = c.set_linked_pod_if_absent(NS, "v", SVC, 2, 100)
        assert link.pod_index == 2 and 0 < (link.ttl_seconds or 0) <= 100
        assert c.get_linked_in_cache(NS, "v", SVC) == 2
        assert s.remove_linked_pod(NS, "v", SVC) is True
        dropped(c, "v")
        c.set_cache(NS, "w", SVC, 2)
        assert c.compute_linked_pod(NS, "w", SVC) == 2
        assert store.get_link(NS, "w", SVC) is None, "answered from the cache"
        s.set_linked_pod(NS, "x", SVC, 2)
        assert c.batch_get_linked_pod(NS, ["w", "x", "y"], SVC) == {2: ["x"]}
        # Cached: w (set_cache). Not u (expired above), not v (its removal by the pod reached
        # this gateway), not x or y (a batch read does not cache).
        assert [c.get_linked_in_cache(NS, u, SVC) for u in "uvwxy"] == [None, None, 2, None, None]
        assert c.cache_len() == 1
        assert c.is_workload_ready(SVC) is False, "only pod 0 keeps the workload state"
        c.set_workload_state("chat", "READY")
        assert c.batch_get_workload_state(["chat", "none"]) == ["READY", None]
        c.set_global_service_name_tag("lobby", "room-v2")
        assert c.get_service_name_by_tag("lobby") == "room-v2"
        assert c.get_service_name_by_tag("nope") is None
        assert c.best_pod(SVC) == 2
        assert c.is_pod_alive(SVC, 2) is True and c.is_pod_routable(SVC, 7) is False
        assert [p.pod_index for p in c.pod_states(SVC)] == [2]
        assert s.server_info == info(2) and c.config.placement == "p2c"


def test_context_managers_start_and_stop(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        async with sr.ServerDriver(store, info(0), fast_config()) as server:
            assert isinstance(server, sr.ServerDriver)
            async with sr.ClientDriver(store, info(0), fast_config()) as client:
                assert await client.compute_linked_pod(NS, "u", SVC) == 0
            with pytest.raises(sr.ClosedError):
                await client.compute_linked_pod(NS, "u", SVC)
        assert (await store.pod_states(NS, SVC))[0].routing_state is sr.RoutingState.SHUTDOWN
        assert await store.get_link(NS, "u", SVC) is not None

    asyncio.run(main())
    store = env.store()
    with blocking.ServerDriver(store, info(1, "chat"), fast_config()) as server:
        assert server.get_routing_state() is sr.RoutingState.READY
    assert store.pod_states(NS, "chat")[0].routing_state is sr.RoutingState.SHUTDOWN


def test_blocking_listener_runs_on_a_library_thread(env: Env) -> None:
    """Registered outside any event loop, a listener runs on a library thread (README
    "Threads"), never on the thread that registered it (which also made the change)."""
    store = env.store()
    cfg = fast_config()
    seen: list[tuple[sr.RoutingStateChange, int, str]] = []
    caller = threading.get_ident()
    with (
        blocking.ServerDriver(store, info(0), cfg) as p0,
        blocking.ClientDriver(store, info(0), cfg) as c,
    ):
        assert c.compute_linked_pod(NS, "u", SVC) == 0
        lid = c.on_routing_state_changed(
            lambda ch: seen.append((ch, threading.get_ident(), threading.current_thread().name))
        )
        p0.set_routing_state("DENY_NEW_CALL")
        eventually("a change reported", lambda: any(ch.pod_index == 0 for ch, _, _ in seen))
        assert c.remove_routing_state_listener(lid) is True
        assert c.remove_routing_state_listener(lid) is False
        change, thread, name = seen[-1]
        assert "DENY_NEW_CALL" in repr(change)
        assert (change.pod_index, change.old, change.new) == (
            0,
            sr.RoutingState.READY,
            sr.RoutingState.DENY_NEW_CALL,
        )
        assert thread != caller, f"the listener ran on the caller's thread ({name})"
        assert all(t != caller for _, t, _ in seen)


def test_core_log_events_reach_python_logging(env: Env) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("stateful_route")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        store = env.store()
        with blocking.ServerDriver(store, info(0), fast_config()):
            pass
        eventually(
            "the 'pod started' and 'pod stopped' events",
            lambda: (
                {"pod started", "pod stopped"}
                <= {
                    r.getMessage().split(" ")[0] + " " + r.getMessage().split(" ")[1]
                    for r in records
                }
            ),
        )
        started = next(r for r in records if r.getMessage().startswith("pod started"))
        assert started.levelno == logging.INFO
        assert started.name.startswith("stateful_route")
        assert "pod=0" in started.getMessage()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
