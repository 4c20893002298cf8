"""The front cache of ``stateful_route.ClientDriver`` (README, "Front caches"): a repeated hit
is answered in Python, and every change that can make it wrong reaches it as fast as it reaches
the core's cache — a move or a removal elsewhere, a local write, a pod's stop, ``close`` — and
every hit it answers is counted in the metrics. Each test first shows that the front cache
holds the answer (so the check after the change is not a core hit in disguise)."""

from __future__ import annotations

import asyncio
import os

import pytest

import stateful_route as sr
from conftest import NS, SVC, Env, aeventually, fast_config, info


async def fronted(gw: sr.ClientDriver, uid: str) -> int:
    """Places `uid`, then asks until the front cache answers it; returns the pod."""
    pod = await gw.compute_linked_pod(NS, uid, SVC)
    assert await gw.compute_linked_pod(NS, uid, SVC) == pod  # the core's hit fills the front
    front = gw._fronts[SVC]
    assert front.links[uid][0] == pod, "the front cache holds the answer"
    hits = front.hits
    assert await gw.compute_linked_pod("", uid, SVC) == pod
    assert front.hits == hits + 1, "the front cache answered"
    return pod


async def setup(env: Env, n: int = 2) -> tuple[sr.Store, list[sr.ServerDriver]]:
    store = await env.astore()
    servers = [sr.ServerDriver(store, info(i), fast_config()) for i in range(n)]
    for s in servers:
        await s.start()
    return store, servers


async def gateway(store: sr.Store, **cfg: object) -> sr.ClientDriver:
    gw = sr.ClientDriver(store, info(0, "gateway"), fast_config(**cfg))
    await gw.init()
    return gw


def test_a_move_and_a_removal_elsewhere_reach_the_front_cache(env: Env) -> None:
    async def main() -> None:
        store, servers = await setup(env)
        gw = await gateway(store)
        pod = await fronted(gw, "u1")
        to = 1 - pod
        await servers[0].set_linked_pod(NS, "u1", SVC, to)

        async def moved() -> bool:
            return await gw.compute_linked_pod(NS, "u1", SVC) == to

        await aeventually("the move reaches the front cache", moved, within=1.0)
        assert await fronted(gw, "u1") == to
        # A removal: the user is placed afresh (its old pod may come back: any pod is fine),
        # but only after the front entry was dropped.
        links_before = gw._epochs[gw._fronts[SVC].links["u1"][2]]
        await servers[0].remove_linked_pod(NS, "u1", SVC, 0)

        async def dropped() -> bool:
            e = gw._fronts[SVC].links["u1"]
            return gw._epochs[e[2]] != links_before

        await aeventually("the removal moves the epoch", dropped, within=1.0)
        await gw.close()
        for s in servers:
            await s.stop()

    asyncio.run(main())


def test_local_writes_a_stop_and_close_reach_the_front_cache(env: Env) -> None:
    async def main() -> None:
        store, servers = await setup(env)
        gw = await gateway(store)
        pod = await fronted(gw, "u1")
        await gw.set_cache(NS, "u1", SVC, 1 - pod)
        assert await gw.compute_linked_pod(NS, "u1", SVC) == 1 - pod
        # The serving pod stops: once the gateway's snapshot says so, no answer names it.
        pod = await fronted(gw, "u2")
        await servers[pod].stop()
        await gw.refresh_service(SVC)
        assert await gw.compute_linked_pod(NS, "u2", SVC) == 1 - pod
        # close: the next call is the core's error, not a front answer.
        await fronted(gw, "u3")
        await gw.close()
        with pytest.raises(sr.ClosedError):
            await gw.compute_linked_pod(NS, "u3", SVC)
        await servers[1 - pod].stop()

    asyncio.run(main())


def test_every_front_hit_is_counted_and_bad_input_still_fails(env: Env) -> None:
    async def main() -> None:
        store, servers = await setup(env, 1)
        gw = await gateway(store)
        await fronted(gw, "u1")  # a placement, a core hit, a front hit
        for _ in range(97):
            await gw.compute_linked_pod(NS, "u1", SVC)
        m = gw.metrics().service(SVC)
        assert m is not None and m.hits == 99, m
        await gw.compute_linked_pod(NS, "u1", SVC)
        line = f'stateful_route_computes_total{{service="{SVC}",result="hit"}} 100'
        assert line in gw.metrics_text().splitlines()
        for bad in [(None, "u1", SVC), (NS, ["u1"], SVC), (NS, "u1", {}), ("elsewhere", "u1", SVC)]:
            with pytest.raises((sr.InvalidArgumentError, sr.NamespaceNotLocalError)):
                await gw.compute_linked_pod(*bad)  # type: ignore[arg-type]
        await gw.close()
        await servers[0].stop()

    asyncio.run(main())


def test_the_front_cache_is_bounded_by_the_cache_capacity(env: Env) -> None:
    async def main() -> None:
        store, servers = await setup(env, 1)
        gw = await gateway(store, cache_capacity=8)
        for i in range(40):
            uid = f"u{i}"
            await gw.compute_linked_pod(NS, uid, SVC)
            await gw.compute_linked_pod(NS, uid, SVC)
            assert sum(len(f.links) for f in gw._fronts.values()) <= 8
        off = await gateway(store, cache_capacity=0)
        await off.compute_linked_pod(NS, "u1", SVC)
        await off.compute_linked_pod(NS, "u1", SVC)
        assert not off._fronts, "no cache, no front cache"
        await gw.close()
        await off.close()
        await servers[0].stop()

    asyncio.run(main())


def test_a_forked_child_forgets_the_front_cache(env: Env) -> None:
    async def main() -> None:
        store, servers = await setup(env, 1)
        gw = await gateway(store)
        await fronted(gw, "u1")
        r, w = os.pipe()
        child = os.fork()
        if child == 0:  # the child: no front answer, the core's fork check instead
            outcome = b"answered"
            try:
                gw.compute_linked_pod(NS, "u1", SVC).send(None)
            except StopIteration:
                pass
            except sr.ClosedError:
                outcome = b"closed"
            finally:
                os.write(w, outcome)
                os._exit(0)
        os.close(w)
        assert os.read(r, 16) == b"closed"
        os.waitpid(child, 0)
        await gw.close()
        await servers[0].stop()

    asyncio.run(main())
