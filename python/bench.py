"""Speed of the Python binding (issue 7 "Speed"); prints figures and ratios from one run.

    python/bench.sh [--redis URL] [--quick]

bench.sh installs ./python built with the `bench` cargo feature (the hooks `_bench_noop`,
`_bench_core_hits` and `_bench_core_new_users` are not in the shipped package) and redis-py into
a venv, then runs this file. `--quick`: one round of few calls (a smoke test, not figures).

Measures, each as the median of several rounds:
  1. blocking `compute_linked_pod` on a cache hit, next to a bare pyo3 call (one `str` in, an
     `int` out: `_bench_noop`) and the core's own hit cost (`compute_cached` looped in Rust);
     the target is hit <= 3 x bare + core;
  2. awaited cache hits per second (`await client.compute_linked_pod`; a hit never leaves the
     event loop's thread);
  3. asyncio new-user computes per second against Redis with 64 concurrent tasks, next to the
     core's own figure (64 tokio tasks) from the same run; the target is >= 50 %;
  4. the same routing written with redis-py asyncio + a TTL dict cache + the same Lua script,
     for the hit path and the new-user path: we must be faster on both;
  5. the cost per placement of a Python callable as placement policy (issue 6): new users on
     the memory store with the built-in p2c, with `lambda c, r: 0` and with p2c written in
     Python, same run: computes driven one at a time from Rust (`_bench_core_new_users`, so
     the difference is the callback), from a blocking Python loop, and from 64 asyncio tasks
     (the policy then runs on the library's threads and competes for the GIL with the loop).
Redis: --redis, else $STATEFUL_ROUTE_TEST_REDIS, else a throwaway server from tests/redis-server.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from typing import Any, Callable

import redis.asyncio as aioredis

# This file sits next to the package's source; import the installed package (with its built
# extension), not the source directory that `python python/bench.py` puts first on sys.path.
_here = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _here]

import stateful_route as sr
from stateful_route import _native, blocking

if not hasattr(_native, "_bench_noop"):
    sys.exit("bench.py: stateful_route was built without the `bench` feature: run python/bench.sh")

NS, SVC = "bench", "bench"
ROUNDS = 5
TASKS = 64

# core/src/store/scripts.rs SET_LINK_IF_ABSENT (with its write_link helper), verbatim.
SET_LINK_IF_ABSENT = """
local function write_link(svc, pod, ttl)
  if ttl < 0 then
    redis.call('SET', KEYS[1], pod)
    redis.call('HSET', KEYS[2], svc, pod)
  else
    redis.call('SET', KEYS[1], pod, 'EX', ttl)
    redis.call('HDEL', KEYS[2], svc)
  end
end
local cur = redis.call('GET', KEYS[1])
if cur then
  return {cur, redis.call('PTTL', KEYS[1])}
end
local ttl = tonumber(ARGV[3])
write_link(ARGV[1], ARGV[2], ttl)
if ttl < 0 then return {ARGV[2], -1} end
return {ARGV[2], ttl * 1000}
"""


class RedisPyRouter:
    """The routing a Python team would write without stateful_route: redis-py asyncio, a dict
    cache with expiry times, a pod-state snapshot refreshed every period, power-of-two-choices
    placement and the same set-if-absent Lua script (one round trip per new user)."""

    def __init__(self, r: aioredis.Redis, prefix: str, period: float = 30.0) -> None:
        self.r = r
        self.prefix = prefix
        self.period = period
        self.cache: dict[tuple[str, str], tuple[int, float]] = {}
        self.snapshots: dict[str, tuple[float, dict[int, tuple[int, str, float]]]] = {}
        self.script = r.register_script(SET_LINK_IF_ABSENT)

    async def _snapshot(self, svc: str) -> dict[int, tuple[int, str, float]]:
        now = time.monotonic()
        snap = self.snapshots.get(svc)
        if snap is None or now - snap[0] > self.period:
            async with self.r.pipeline(transaction=False) as p:
                p.hgetall(f"{self.prefix}:{{{NS}:state:{svc}}}")
                p.time()
                fields, (secs, micros) = await p.execute()
            store_ms = int(secs) * 1000 + int(micros) // 1000
            pods = {}
            for f, v in fields.items():
                load, update_ms, routing = v.decode().split("-", 2)
                age = (store_ms - int(update_ms)) / 1000
                pods[int(f)] = (int(load), routing, now + 3 * self.period - age)
            snap = (now, pods)
            self.snapshots[svc] = snap
        return snap[1]

    async def compute(self, uid: str, svc: str) -> int:
        now = time.monotonic()
        hit = self.cache.get((svc, uid))
        if hit is not None and hit[1] > now:
            snap = self.snapshots.get(svc)
            state = snap[1].get(hit[0]) if snap else None
            if state is not None and state[1] != "SHUTDOWN" and state[2] > now:
                return hit[0]
        pods = await self._snapshot(svc)
        routable = [
            p for p, (_, routing, alive) in pods.items() if routing == "READY" and alive > now
        ]
        if not routable:
            raise RuntimeError("no routable pod")
        a, b = random.choice(routable), random.choice(routable)
        best = a if pods[a][0] <= pods[b][0] else b
        key = f"{self.prefix}:{{{NS}:lk:{uid}}}"
        pod, pttl = await self.script(keys=[key + svc, key], args=[svc, best, 300])
        pod = int(pod)
        ttl = 240.0 if int(pttl) < 0 else min(240.0, int(pttl) / 1000 - 60)
        self.cache[(svc, uid)] = (pod, now + ttl)
        return pod


def per_call_ns(fn: Callable[[], Any], n: int) -> float:
    """Median over ROUNDS of the per-call time of `fn`, in ns."""
    return statistics.median(timeit.timeit(fn, number=n) / n * 1e9 for _ in range(ROUNDS))


def redis_url(arg: str | None) -> tuple[str, Callable[[], None]]:
    url = arg or os.environ.get("STATEFUL_ROUTE_TEST_REDIS")
    if url:
        return url, lambda: None
    repo = pathlib.Path(__file__).resolve().parents[1]
    state = tempfile.mkdtemp(prefix="sr-bench-")
    script = str(repo / "tests/redis-server.sh")
    out = subprocess.run([script, "start", state], check=True, capture_output=True, text=True)
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in out.stdout.split("\n") if line
    )
    return env["STATEFUL_ROUTE_TEST_REDIS"], lambda: subprocess.run([script, "stop", state])


async def new_users_ours(client: sr.ClientDriver, prefix: str, n: int) -> float:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await client.compute_linked_pod("", f"{prefix}{i}", SVC)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return n / (time.perf_counter() - start)


async def new_users_redis_py(router: RedisPyRouter, prefix: str, n: int) -> float:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await router.compute(f"{prefix}{i}", SVC)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return n / (time.perf_counter() - start)


async def awaited_hits(call: Callable[[], Any], n: int) -> float:
    """Median awaited hits per second."""
    rates = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            await call()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


async def main_async(url: str, n_new: int, n_hit: int) -> None:
    run_id = f"b{os.getpid()}x{time.time_ns() % 10**9}"
    store = await sr.Store.connect(url, key_prefix=run_id)
    cfg = sr.BaseConfig(cpu_factor=0.0)
    servers = [
        sr.ServerDriver(store, sr.ServerInfo(namespace=NS, service_name=SVC, pod_index=i), cfg)
        for i in range(4)
    ]
    for s in servers:
        await s.start()
    gw = sr.ServerInfo(namespace=NS, service_name="gateway", pod_index=0)

    # 1. Blocking hit vs a bare pyo3 call vs the core's own hit.
    bclient = blocking.ClientDriver(store, gw, cfg)
    bclient.init()
    uid = "hot-user"
    bclient.compute_linked_pod(NS, uid, SVC)
    hit_ns = per_call_ns(lambda: bclient.compute_linked_pod(NS, uid, SVC), n_hit)
    bare_ns = per_call_ns(lambda: _native._bench_noop(uid), n_hit)
    core_ns = statistics.median(
        _native._bench_core_hits(bclient, NS, uid, SVC, n_hit) for _ in range(ROUNDS)
    )
    budget = 3 * bare_ns + core_ns
    print("1. blocking compute_linked_pod, cache hit")
    print(f"   bare pyo3 call (str -> int)       {bare_ns:8.0f} ns")
    print(f"   core hit (compute_cached in Rust) {core_ns:8.0f} ns")
    print(f"   blocking hit from Python          {hit_ns:8.0f} ns")
    print(f"   hit / (3 x bare + core)           {hit_ns / budget:8.2f}   (target <= 1)")

    # 2. Awaited hits, ours and redis-py's dict cache.
    client = sr.ClientDriver(store, gw, cfg)
    await client.init()
    await client.compute_linked_pod(NS, uid, SVC)
    r = aioredis.Redis.from_url(url, max_connections=TASKS * 2)
    router = RedisPyRouter(r, run_id)
    await router.compute(uid, SVC)
    ours_hits = await awaited_hits(lambda: client.compute_linked_pod(NS, uid, SVC), n_hit)
    theirs_hits = await awaited_hits(lambda: router.compute(uid, SVC), n_hit)
    print("2. await compute_linked_pod, cache hit (on the event loop's thread)")
    print(
        f"   stateful_route                    {ours_hits:10.0f} hits/s ({1e9 / ours_hits:.0f} ns)"
    )
    print(
        f"   redis-py + dict cache             {theirs_hits:10.0f} hits/s ({1e9 / theirs_hits:.0f} ns)"
    )
    print(f"   ours / redis-py                   {ours_hits / theirs_hits:10.2f}   (target > 1)")

    # 3 and 4. New users against Redis, 64 concurrent tasks.
    ours, core, theirs = [], [], []
    for rnd in range(ROUNDS):
        ours.append(await new_users_ours(client, f"o{rnd}-", n_new))
        secs = await asyncio.to_thread(
            _native._bench_core_new_users, client, f"c{rnd}-", n_new, TASKS
        )
        core.append(n_new / secs)
        theirs.append(await new_users_redis_py(router, f"t{rnd}-", n_new))
    ours_m, core_m, theirs_m = (statistics.median(x) for x in (ours, core, theirs))
    print(f"3. new users against Redis, {TASKS} concurrent tasks, {n_new} users a round")
    print(f"   core (64 tokio tasks)             {core_m:10.0f} users/s")
    print(f"   stateful_route asyncio            {ours_m:10.0f} users/s")
    print(f"   asyncio / core                    {ours_m / core_m:10.2f}   (target >= 0.5)")
    print(f"   redis-py asyncio + dict cache     {theirs_m:10.0f} users/s")
    print(f"   ours / redis-py                   {ours_m / theirs_m:10.2f}   (target > 1)")

    await client.close()
    bclient.close()
    for s in servers:
        await s.stop()
    await r.aclose()

    await placement_callback_cost(n_new)


def p2c_in_python(candidates: list[sr.Candidate], request: sr.PlacementRequest) -> int:
    """The built-in p2c's rule, as a user would write it in Python."""
    n = len(candidates)
    if n == 1:
        return 0
    a = random.randrange(n)
    b = random.randrange(n - 1)
    if b >= a:
        b += 1
    return a if candidates[a].effective_load <= candidates[b].effective_load else b


async def placement_callback_cost(n: int) -> None:
    store = sr.Store.memory(key_prefix="cb")
    cfg = sr.BaseConfig(cpu_factor=0.0)
    servers = [
        sr.ServerDriver(store, sr.ServerInfo(namespace=NS, service_name=SVC, pod_index=i), cfg)
        for i in range(4)
    ]
    for s in servers:
        await s.start()
    gw = sr.ServerInfo(namespace=NS, service_name="gateway", pod_index=0)
    bclient = blocking.ClientDriver(store, gw, cfg)
    bclient.init()
    client = sr.ClientDriver(store, gw, cfg)
    await client.init()
    policies: list[tuple[str, Any]] = [
        ("built-in p2c", "p2c"),
        ("Python `lambda c, r: 0`", lambda c, r: 0),
        ("Python p2c (same rule)", p2c_in_python),
    ]
    rust: dict[str, list[float]] = {k: [] for k, _ in policies}
    py: dict[str, list[float]] = {k: [] for k, _ in policies}
    aio: dict[str, list[float]] = {k: [] for k, _ in policies}
    for rnd in range(ROUNDS):
        for k, (name, policy) in enumerate(policies):
            bclient.set_service_placement(SVC, policy)
            client.set_service_placement(SVC, policy)
            secs = _native._bench_core_new_users(bclient, f"r{rnd}-{k}-", n, 1)
            rust[name].append(secs / n * 1e9)
            start = time.perf_counter()
            for i in range(n):
                bclient.compute_linked_pod("", f"p{rnd}-{k}-{i}", SVC)
            py[name].append((time.perf_counter() - start) / n * 1e9)
            aio[name].append(await new_users_ours(client, f"a{rnd}-{k}-", n))
    base = "built-in p2c"
    b_rust, b_py = statistics.median(rust[base]), statistics.median(py[base])
    print(f"5. placement policy cost, new users on the memory store, {n} users a round")
    print("   policy                       from Rust    from Python   64 asyncio tasks")
    for name, _ in policies:
        r_ns, p_ns, a = (statistics.median(x[name]) for x in (rust, py, aio))
        extra = "" if name == base else f"   (+{r_ns - b_rust:.0f} ns / +{p_ns - b_py:.0f} ns)"
        print(f"   {name:26} {r_ns:8.0f} ns  {p_ns:9.0f} ns  {a:10.0f} users/s{extra}")
    print("   (+x ns: the callback's cost per placement over the built-in, from Rust / Python)")
    await client.close()
    bclient.close()
    for s in servers:
        await s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--redis", help="redis:// URL (default: $STATEFUL_ROUTE_TEST_REDIS or a new server)"
    )
    ap.add_argument("--new-users", type=int, default=5000, help="new users per round")
    ap.add_argument("--hits", type=int, default=200_000, help="cache hits per round")
    ap.add_argument("--quick", action="store_true", help="one round of 200 users, 2000 hits")
    args = ap.parse_args()
    if args.quick:
        global ROUNDS
        ROUNDS, args.new_users, args.hits = 1, 200, 2000
    url, stop = redis_url(args.redis)
    try:
        asyncio.run(main_async(url, args.new_users, args.hits))
    finally:
        stop()


if __name__ == "__main__":
    main()
