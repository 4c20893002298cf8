"""The shared link-operation vectors (tests/vectors/links.json) against the Store API.

Interpreted as core/tests/behaviour.rs `run_vectors` does, on both stores, through both the
blocking and the asyncio Store.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

import pytest

import stateful_route as sr
from conftest import REPO, Env

DOC = json.loads((REPO / "tests/vectors/links.json").read_text())
# Every step of every case runs: the runners return how many did, and must return exactly this.
STEPS = sum(len(case["steps"]) for case in DOC["cases"])
Wait = Callable[[Any], Awaitable[Any]]


def _link(link: "sr.Link | None") -> dict[str, Any]:
    if link is None:
        return {"pod": None}
    return {"pod": link.pod_index, "persistent": link.persistent, "ttl": link.ttl_seconds}


async def _call(store: Any, step: dict[str, Any], ns: str, wait: Wait) -> dict[str, Any]:
    op, uid, svc = step["op"], step.get("uid", ""), step.get("service", "")
    pod, ttl, delay = step.get("pod"), step.get("ttl"), step.get("delay", 0)
    if op == "set_link":
        return {"previous": await wait(lambda: store.set_link(ns, uid, svc, pod, ttl))}
    if op == "set_link_if_absent":
        return _link(await wait(lambda: store.set_link_if_absent(ns, uid, svc, pod, ttl)))
    if op == "try_set_link":
        o = await wait(lambda: store.try_set_link(ns, uid, svc, pod, ttl))
        return {"accepted": o.accepted, "owner": o.owner, "previous": o.previous}
    if op == "remove_link":
        return {"removed": await wait(lambda: store.remove_link(ns, uid, svc, delay))}
    if op == "remove_link_if":
        return {"removed": await wait(lambda: store.remove_link_if(ns, uid, svc, pod, delay))}
    if op == "get_link":
        return _link(await wait(lambda: store.get_link(ns, uid, svc)))
    if op == "get_link_if_persist":
        return {"pod": await wait(lambda: store.get_link_if_persist(ns, uid, svc))}
    if op == "get_link_services":
        return {"services": await wait(lambda: store.get_link_services(ns, uid))}
    if op == "batch_get_links":
        pods = await wait(lambda: store.batch_get_links(ns, step["uids"], svc))
        return {"pods": {str(p): uids for p, uids in pods.items()}}
    raise AssertionError(f"unknown op {op}")


def _check(got: dict[str, Any], expect: dict[str, Any], at: str) -> None:
    for k, want in expect.items():
        if k == "ttl_min":
            assert got["ttl"] is not None and got["ttl"] >= want, f"{at}: {got}"
        elif k == "ttl_max":
            assert got["ttl"] is not None and got["ttl"] <= want, f"{at}: {got}"
        else:
            assert got.get(k) == want, f"{at}: field {k} of {got}, want {want}"


async def _run_all(store: Any, wait: Wait) -> int:
    steps = 0
    for case in DOC["cases"]:
        for i, step in enumerate(case["steps"]):
            at = f"{case['name']} / step {i} ({step['op']})"
            ns = step.get("namespace", DOC["namespace"])
            expect = step["expect"]
            if "error" in expect:
                with pytest.raises(sr.StatefulRouteError) as e:
                    await _call(store, step, ns, wait)
                assert e.value.code == expect["error"], f"{at}: {e.value!r}"
            else:
                _check(await _call(store, step, ns, wait), expect, at)
            steps += 1
    return steps


def test_vectors_blocking(env: Env) -> None:
    async def plain(call: Callable[[], Any]) -> Any:
        return call()

    assert asyncio.run(_run_all(env.store(), plain)) == STEPS


def test_vectors_asyncio(env: Env) -> None:
    async def awaited(call: Callable[[], Awaitable[Any]]) -> Any:
        return await call()

    async def main() -> int:
        return await _run_all(await env.astore(), awaited)

    assert asyncio.run(main()) == STEPS
