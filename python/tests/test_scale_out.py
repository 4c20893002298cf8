"""Scale-out (issue 4) from Python: `Store.connect_cluster` on a real 3-master Redis Cluster and
`Store.connect_sentinel` following a Sentinel failover. Every server is a `redis-server`
process on loopback started here (as core/tests/cluster.rs does) on leased ports, by
tests/redis_launch.py (tests/PORTS.md); a failing test's report shows their logs. Nothing is
mocked.
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from typing import Any, Callable

import pytest
from conftest import NS, REPO, SERVER_LOGS, SVC, Env, eventually, fast_config, info
from test_vectors import STEPS, _run_all

import stateful_route as sr
from stateful_route import blocking

sys.path.append(str(REPO / "tests"))
import redis_launch  # tests/redis_launch.py: leased ports (tests/PORTS.md)


class Servers:
    """redis-server processes of one test module, each in its own directory under `root` on
    leased ports (tests/redis_launch.py), killed at the end."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.started: list[redis_launch.Server] = []

    def start(self, name: str, *args: str, cluster: bool = False) -> redis_launch.Server:
        """Starts `redis-server *args` in root/name; returns once it answers."""
        s = redis_launch.start_redis(self.root / name, args, cluster=cluster)
        self.started.append(s)
        return s

    def stop_all(self) -> None:
        for s in self.started:
            s.kill()

    def logs(self) -> list[tuple[str, str]]:
        """(name, last lines of its log) of every server started so far."""
        return [(f"{s.dir.name} (:{s.port}) {s.log}", s.log_tail(200)) for s in self.started]


DATA = ("--save", "", "--appendonly", "no")


def cli(port: int, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    return out.stdout


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("redis"))
    yield s
    s.stop_all()


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request: pytest.FixtureRequest, servers: Servers) -> None:
    """A failing test's report shows the logs of this module's servers."""
    request.node.stash[SERVER_LOGS] = servers.logs


@pytest.fixture(scope="module")
def cluster(servers: Servers) -> list[str]:
    """A 3-master Redis Cluster; its node URLs."""
    nodes = [
        servers.start(f"node{i}", *DATA, "--cluster-node-timeout", "1000", cluster=True)
        for i in range(3)
    ]
    ports = [n.port for n in nodes]
    out = subprocess.run(
        ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
        + ["--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    eventually(
        "cluster_state:ok on every node",
        lambda: all("cluster_state:ok" in cli(p, "CLUSTER", "INFO") for p in ports),
        within=30,
    )
    return [f"redis://127.0.0.1:{p}" for p in ports]


def _prefix() -> str:
    return Env("memory", "").prefix


def test_vectors_on_a_cluster_blocking(cluster: list[str]) -> None:
    async def plain(call: Callable[[], Any]) -> Any:
        return call()

    store = blocking.Store.connect_cluster(cluster, key_prefix=_prefix())
    assert repr(store) == "<Store redis>"
    assert asyncio.run(_run_all(store, plain)) == STEPS


def test_vectors_on_a_cluster_asyncio(cluster: list[str]) -> None:
    async def awaited(call: Callable[[], Awaitable[Any]]) -> Any:
        return await call()

    async def main() -> int:
        # One seed node is enough: the client discovers the others.
        store = await sr.Store.connect_cluster(cluster[:1], key_prefix=_prefix())
        return await _run_all(store, awaited)

    assert asyncio.run(main()) == STEPS


def test_drivers_and_batch_reads_on_a_cluster(cluster: list[str]) -> None:
    store = blocking.Store.connect_cluster(cluster, key_prefix=_prefix(), command_timeout=2)
    memory = blocking.Store.memory()
    cfg = fast_config()
    pods = [blocking.ServerDriver(store, info(i), cfg) for i in range(3)]
    for p in pods:
        p.start()
    with blocking.ClientDriver(store, info(0, "gw"), cfg) as gw:
        eventually("3 routable pods", lambda: len(gw.routable_pods(SVC)) == 3)
        placed = {f"c{i}": gw.compute_linked_pod("", f"c{i}", SVC) for i in range(200)}
        for uid, pod in placed.items():
            memory.set_link(NS, uid, SVC, pod, 300)
        # Users hash to every slot range; the batch read is split by slot and merged in order.
        uids = list(reversed(placed))
        assert gw.batch_get_linked_pod("", uids, SVC) == memory.batch_get_links(NS, uids, SVC)
        assert store.batch_get_links(NS, uids, SVC) == memory.batch_get_links(NS, uids, SVC)
    for p in pods:
        p.stop()


def test_the_store_follows_a_sentinel_failover(servers: Servers) -> None:
    master_server = servers.start("master", *DATA)
    master = master_server.port
    replica = servers.start("replica", *DATA, "--replicaof", "127.0.0.1", str(master)).port
    eventually(
        "the replica to sync",
        lambda: "master_link_status:up" in cli(replica, "INFO", "replication"),
        within=10,
    )
    # A sentinel rewrites its config file, so it gets one of its own in its directory.
    conf = servers.root / "sentinel" / "sentinel.conf"
    conf.parent.mkdir()
    conf.write_text(
        f"sentinel monitor main 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds main 1000\n"
        "sentinel failover-timeout main 5000\n"
    )
    sentinel = servers.start("sentinel", str(conf), "--sentinel").port
    url = f"redis://127.0.0.1:{sentinel}"
    kw: dict[str, Any] = dict(key_prefix=_prefix(), connect_timeout=1, command_timeout=1)
    store = blocking.Store.connect_sentinel([url], "main", **kw)

    async def astore() -> sr.Store:
        return await sr.Store.connect_sentinel([url], "main", **kw)

    astore_ = asyncio.run(astore())
    store.set_link(NS, "before", SVC, 1, -1)
    eventually("the replica has the link", lambda: "keys=" in cli(replica, "INFO", "keyspace"))

    master_server.kill()
    killed = time.monotonic()
    errors: dict[str, int] = {}
    while True:
        try:
            store.set_link(NS, "after", SVC, 2, -1)
            break
        except sr.StatefulRouteError as e:
            errors[e.code] = errors.get(e.code, 0) + 1
        assert time.monotonic() - killed < 40, f"the store did not follow the failover: {errors}"
        time.sleep(0.1)
    print(f"sentinel: writes resumed {time.monotonic() - killed:.1f}s after the kill; {errors}")
    assert set(errors) <= {"STORE_UNAVAILABLE", "TIMEOUT", "STORE_ERROR"}, errors
    assert "role:master" in cli(replica, "INFO", "replication")
    assert store.get_link_if_persist(NS, "before", SVC) == 1
    assert store.get_link_if_persist(NS, "after", SVC) == 2

    # The asyncio store made before the failover follows it too.
    async def after() -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                await astore_.set_link(NS, "async-after", SVC, 0, -1)
                break
            except (sr.StoreUnavailableError, sr.StoreTimeoutError, sr.StoreError):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        assert await astore_.get_link_if_persist(NS, "before", SVC) == 1

    asyncio.run(after())
