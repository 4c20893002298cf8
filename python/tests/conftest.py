"""Fixtures: every test runs on the in-memory store and on a real redis-server.

Redis comes from $STATEFUL_ROUTE_TEST_REDIS (python/test.sh and tests/run-all.sh set it); when
it is unset, a throwaway server is started with the repository's tests/redis-server.sh.
Each test gets its own key prefix, so tests never see each other's keys. A test that starts
servers of its own stores a SERVER_LOGS callable in its item's stash; if it fails, its report
shows those servers' logs.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pathlib
import subprocess
import tempfile
import time
from typing import Any, Awaitable, Callable, Generator, Iterator

import pytest

import stateful_route as sr
from stateful_route import blocking

REPO = pathlib.Path(__file__).resolve().parents[2]
NS = "pyt"
SVC = "room"
_counter = itertools.count()
SERVER_LOGS = pytest.StashKey[Callable[[], list[tuple[str, str]]]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Adds the logs of the servers a failing test used (SERVER_LOGS) to its report."""
    outcome = yield
    report = outcome.get_result()
    logs = item.stash.get(SERVER_LOGS, None)
    if report.failed and logs is not None:
        for name, text in logs():
            report.sections.append((f"server log: {name}", text))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("STATEFUL_ROUTE_TEST_REDIS")
    if url:
        yield url
        return
    state = tempfile.mkdtemp(prefix="sr-py-redis-")
    out = subprocess.run(  # its stderr (a failed start's log) goes to the test's output
        [str(REPO / "tests/redis-server.sh"), "start", state],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.split("\n") if line)
    try:
        yield env["STATEFUL_ROUTE_TEST_REDIS"]
    finally:
        subprocess.run([str(REPO / "tests/redis-server.sh"), "stop", state], check=False)


def pytest_report_header() -> str:
    return f"stateful_route from {pathlib.Path(sr.__file__).parent}"


class Env:
    """One test's store settings: kind, Redis URL and a unique key prefix."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.prefix = f"py{os.getpid()}-{time.time_ns() % 10**12}-{next(_counter)}"

    def store(self) -> blocking.Store:
        """A blocking store (call once per test: each memory store is its own world)."""
        if self.kind == "memory":
            return blocking.Store.memory(key_prefix=self.prefix)
        return blocking.Store.connect(self.url, key_prefix=self.prefix)

    async def astore(self) -> sr.Store:
        """An asyncio store (call once per test)."""
        if self.kind == "memory":
            return sr.Store.memory(key_prefix=self.prefix)
        return await sr.Store.connect(self.url, key_prefix=self.prefix)

    def keys(self, store: Any) -> list[str]:
        """Every key under this test's prefix, sorted."""
        if self.kind == "memory":
            return list(store._keys())
        out = subprocess.run(
            ["redis-cli", "-u", self.url, "--scan", "--pattern", f"{self.prefix}:*"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return sorted(k for k in out.split("\n") if k)

    def redis_cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-u", self.url, *args], check=True, capture_output=True, text=True
        ).stdout


@pytest.fixture(params=["memory", "redis"])
def env(request: pytest.FixtureRequest, redis_url: str) -> Env:
    return Env(request.param, redis_url)


def fast_config(**kw: Any) -> sr.BaseConfig:
    """Short periods so that tests see refreshes quickly; CPU off so loads are exact."""
    base: dict[str, Any] = dict(service_state_update_period_seconds=0.2, cpu_factor=0.0)
    base.update(kw)
    return sr.BaseConfig(**base)


def info(pod: int = 0, service: str = SVC) -> sr.ServerInfo:
    return sr.ServerInfo(namespace=NS, service_name=service, pod_index=pod)


def eventually(what: str, check: Callable[[], bool], within: float = 5.0) -> None:
    """Polls `check` until it is true; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for: {what}")
        time.sleep(0.01)


async def aeventually(what: str, check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for: {what}")
        await asyncio.sleep(0.01)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]
