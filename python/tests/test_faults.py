"""Store faults through the Python package (README "Operating it"), on a redis-server of each
test's own (tests/redis_launch.py, leased port held by this process): SIGSTOP makes calls fail
with TIMEOUT within command_timeout, SIGKILL with STORE_UNAVAILABLE, and after the fault ends
(SIGCONT, or a restart on the same port) new users are routed again within a bounded time.
Stale-if-error: while the server is stopped, a cached link whose entry expired is still served
and a new user fails with TIMEOUT. Nothing is mocked.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from conftest import NS, REPO, SERVER_LOGS, SVC, Env, eventually, fast_config, info

import stateful_route as sr
from stateful_route import blocking

sys.path.append(str(REPO / "tests"))
import redis_launch  # tests/redis_launch.py: leased ports (tests/PORTS.md)

DATA = ("--save", "", "--appendonly", "no")
COMMAND_TIMEOUT = 0.3
# How much later than command_timeout a failing call may return (a loaded 2-core machine).
SLACK = 1.0


class OwnRedis:
    """A redis-server only this test uses. The port's lease stays with this process (the
    launcher's non-detached mode), so a restart after SIGKILL gets the same port back."""

    def __init__(self, dir: pathlib.Path) -> None:
        self.server = redis_launch.start_redis(dir, DATA)
        self.port = self.server.port
        self.url = f"redis://127.0.0.1:{self.port}"
        self.stopped = False

    def signal(self, sig: int) -> None:
        os.kill(self.server.pid, sig)
        self.stopped = sig == signal.SIGSTOP

    def kill(self) -> None:
        """SIGKILL, then wait until the port refuses connections."""
        self.server.kill()
        deadline = time.monotonic() + 10
        while _accepts(self.port):
            assert time.monotonic() < deadline, "the killed redis-server still accepts"
            time.sleep(0.01)

    def restart(self) -> None:
        """A new, empty redis-server on the same port, dir and log."""
        s = self.server
        proc = subprocess.Popen(
            ["redis-server", *DATA, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--dir", str(s.dir), "--logfile", str(s.log)],
            cwd=s.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.server = redis_launch.Server(s.dir, self.port, None, proc, s.log)
        eventually(
            "the restarted redis-server answers",
            lambda: redis_launch.server_pid(self.port) == proc.pid,
            within=10,
        )

    def close(self) -> None:
        if self.stopped:
            self.signal(signal.SIGCONT)
        self.server.kill()

    def logs(self) -> list[tuple[str, str]]:
        return [(f"own redis (:{self.port}) {self.server.log}", self.server.log_tail(200))]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def own_redis(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path / "redis")
    request.node.stash[SERVER_LOGS] = r.logs
    yield r
    r.close()


def _store(r: OwnRedis) -> blocking.Store:
    return blocking.Store.connect(
        r.url,
        key_prefix=Env("redis", r.url).prefix,
        connect_timeout=COMMAND_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
    )


def _fails(
    call: Callable[[], Any], error: type[sr.StatefulRouteError], code: str
) -> tuple[sr.StatefulRouteError, float]:
    """Runs `call`, which must raise `error` with `code`; returns it and how long it took."""
    t0 = time.monotonic()
    with pytest.raises(sr.StatefulRouteError) as e:
        call()
    took = time.monotonic() - t0
    assert type(e.value) is error and e.value.code == code, repr(e.value)
    return e.value, took


def _routes_again(
    client: blocking.ClientDriver, stem: str, within: float, *also: type[Exception]
) -> float:
    """Polls until a new user is routed; returns how long that took. Until then a call may
    fail with TIMEOUT or STORE_UNAVAILABLE (or one of `also`), within the deadline."""
    t0 = time.monotonic()
    n = 0

    def routed() -> bool:
        nonlocal n
        n += 1
        t = time.monotonic()
        try:
            return client.compute_linked_pod(NS, f"{stem}{n}", SVC) in (0, 1)
        except (sr.StoreTimeoutError, sr.StoreUnavailableError, *also):
            assert time.monotonic() - t <= COMMAND_TIMEOUT + SLACK
            return False

    eventually(f"a new user routed after {stem}", routed, within=within)
    return time.monotonic() - t0


def _stream_up(client: blocking.ClientDriver, pod: blocking.ServerDriver) -> None:
    """Waits until `client`'s event stream delivers again: moves a marker user until the
    client's link listener sees a move (a move made while the stream is down is missed)."""
    seen: list[str] = []
    marker = f"marker-{time.monotonic_ns()}"
    lid = client.on_link_changed(lambda ch: seen.append(ch.uid))
    target = [0]

    def moved() -> bool:
        target[0] = 1 - target[0]
        pod.set_linked_pod(NS, marker, SVC, target[0])
        return marker in seen

    try:
        eventually("the event stream is back", moved)
    finally:
        client.remove_link_listener(lid)


def test_sigstop_times_out_sigkill_is_unavailable_and_routing_comes_back(
    own_redis: OwnRedis,
) -> None:
    store = _store(own_redis)
    # The pause (about 1.2 s) is shorter than stale_after, so the pods are alive when the store
    # answers again, whichever comes first: their next publish or the gateway's next read.
    stale_after = 3.0
    cfg = fast_config(stale_after_seconds=stale_after)
    pods = [blocking.ServerDriver(store, info(i), cfg) for i in (0, 1)]
    for p in pods:
        p.start()
    client = blocking.ClientDriver(store, info(0), cfg)
    client.init()
    try:
        cached = client.compute_linked_pod(NS, "cached", SVC)

        # Silent: every call fails with TIMEOUT, within command_timeout.
        own_redis.signal(signal.SIGSTOP)
        for i in range(3):
            _, took = _fails(
                lambda i=i: client.compute_linked_pod(NS, f"paused{i}", SVC),
                sr.StoreTimeoutError,
                "TIMEOUT",
            )
            assert COMMAND_TIMEOUT * 0.9 <= took <= COMMAND_TIMEOUT + SLACK, took
        _fails(lambda: store.get_link(NS, "cached", SVC), sr.StoreTimeoutError, "TIMEOUT")
        assert client.compute_linked_pod(NS, "cached", SVC) == cached, "a cache hit needs no store"
        own_redis.signal(signal.SIGCONT)
        assert _routes_again(client, "after-pause", 5) < 5
        # The event stream broke during the pause too; once it is back the cache was emptied
        # (it may have missed events): wait for it, then cache the user again.
        _stream_up(client, pods[0])
        assert client.compute_linked_pod(NS, "cached", SVC) == cached

        # Gone: every call fails with STORE_UNAVAILABLE, and fast (connection refused), for
        # longer than stale_after, during which liveness stays frozen at the last good read.
        own_redis.kill()
        down = time.monotonic()
        i = 0
        while time.monotonic() - down < stale_after + 0.5:
            i += 1
            _, took = _fails(
                lambda i=i: client.compute_linked_pod(NS, f"killed{i}", SVC),
                sr.StoreUnavailableError,
                "STORE_UNAVAILABLE",
            )
            assert took <= COMMAND_TIMEOUT + SLACK, took
            assert client.compute_linked_pod(NS, "cached", SVC) == cached
            assert client.alive_pods(SVC) == [0, 1], "liveness freezes while the store is gone"
            time.sleep(0.05)  # pacing the probes, not waiting for anything

        # Restarted empty on the same port: the pods republish, new users are routed again.
        own_redis.restart()
        # Restarted empty: a refresh may read no pod states before the pods republish.
        assert _routes_again(client, "after-restart", 10, sr.NoAvailablePodError) < 10
        eventually(
            "both pods republished",
            lambda: [s.pod_index for s in store.pod_states(NS, SVC)] == [0, 1],
        )
    finally:
        if own_redis.stopped:
            own_redis.signal(signal.SIGCONT)
        client.close()
        for p in pods:
            try:
                p.stop()
            except (sr.StoreTimeoutError, sr.StoreUnavailableError):
                pass  # a stop with the store gone still closes the driver


def test_stale_if_error_serves_an_expired_cached_link_while_the_store_is_silent(
    own_redis: OwnRedis,
) -> None:
    store = _store(own_redis)
    # Cache entries live 1 s (temp TTL 10 − margin 9 and the 1 s cache time); stale-if-error
    # serves them up to 5 s past that (below the 9 s margin, so not cut by it). The pause
    # (about 2 s) is shorter than stale_after: the pod is alive when the store answers again.
    kw: dict[str, Any] = {
        "temp_link_info_cache_time_seconds": 10,
        "user_link_info_cache_time_seconds": 1,
        "stale_after_seconds": 5.0,
    }
    cfg = fast_config(serve_stale_seconds=5, **kw)
    pod = blocking.ServerDriver(store, info(0), cfg)
    pod.start()
    client = blocking.ClientDriver(store, info(0), cfg)
    no_stale = blocking.ClientDriver(store, info(0), fast_config(serve_stale_seconds=0, **kw))
    client.init()
    no_stale.init()
    try:
        assert client.compute_linked_pod(NS, "old", SVC) == 0
        assert no_stale.compute_linked_pod(NS, "old", SVC) == 0
        own_redis.signal(signal.SIGSTOP)
        eventually(
            "the cache entries expire",
            lambda: (
                client.get_linked_in_cache(NS, "old", SVC) is None
                and no_stale.get_linked_in_cache(NS, "old", SVC) is None
            ),
        )
        t0 = time.monotonic()
        assert client.compute_linked_pod(NS, "old", SVC) == 0, "served stale"
        assert time.monotonic() - t0 <= COMMAND_TIMEOUT + SLACK
        # Without stale-if-error the same user fails like a new one.
        _fails(lambda: no_stale.compute_linked_pod(NS, "old", SVC), sr.StoreTimeoutError, "TIMEOUT")
        _, took = _fails(
            lambda: client.compute_linked_pod(NS, "new", SVC), sr.StoreTimeoutError, "TIMEOUT"
        )
        assert took <= COMMAND_TIMEOUT + SLACK
        own_redis.signal(signal.SIGCONT)
        assert client.compute_linked_pod(NS, "new", SVC) == 0
    finally:
        if own_redis.stopped:
            own_redis.signal(signal.SIGCONT)
        client.close()
        no_stale.close()
        pod.stop()
