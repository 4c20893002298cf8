"""Process-level behaviour: fork, the GIL, where awaited cache hits run, and the type stubs."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import stateful_route as sr
from conftest import NS, SVC, Env, fast_config, info
from stateful_route import blocking


def _wait_child(pid: int, within: float = 20.0) -> int:
    """Exit code of a forked child; kills it and fails if it hangs."""
    deadline = time.monotonic() + within
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung")
        time.sleep(0.01)


def test_fork_after_start_fails_clearly_in_the_child(env: Env) -> None:
    store = env.store()
    with (
        blocking.ServerDriver(store, info(0), fast_config()),
        blocking.ClientDriver(store, info(0), fast_config()) as c,
    ):
        assert c.compute_linked_pod(NS, "u", SVC) == 0
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: every call must raise ClosedError at once, nothing may hang
            code = 0
            try:
                for call in (
                    lambda: c.compute_linked_pod(NS, "u", SVC),
                    lambda: c.compute_linked_pod(NS, "new", SVC),
                    lambda: store.get_link(NS, "u", SVC),
                    lambda: blocking.Store.memory().get_link(NS, "u", SVC),
                    lambda: blocking.ClientDriver(blocking.Store.memory(), info(0)),
                ):
                    try:
                        call()
                        code = 3
                    except sr.ClosedError as e:
                        if "fork" not in str(e):
                            code = 4
                os.write(w, b"done")
            except BaseException:
                code = 5
            finally:
                os._exit(code)
        os.close(w)
        assert _wait_child(pid) == 0
        assert os.read(r, 16) == b"done"
        os.close(r)
        # The parent is unaffected.
        assert c.compute_linked_pod(NS, "u", SVC) == 0
        assert c.compute_linked_pod(NS, "other", SVC) == 0


def test_prefork_pattern_works_in_children(env: Env) -> None:
    """Import in the parent, fork, then make stores and drivers in each child: they work."""
    script = textwrap.dedent(
        f"""
        import os, sys
        import stateful_route
        from stateful_route import blocking
        pids = []
        for worker in range(2):
            pid = os.fork()
            if pid == 0:
                try:
                    if {env.kind!r} == "memory":
                        store = blocking.Store.memory()
                    else:
                        store = blocking.Store.connect({env.url!r}, key_prefix={env.prefix!r} + str(worker))
                    info = stateful_route.ServerInfo(namespace="ns", service_name="svc", pod_index=worker)
                    with blocking.ServerDriver(store, info), blocking.ClientDriver(store, info) as c:
                        assert c.compute_linked_pod("", "u", "svc") == worker
                    os._exit(0)
                except BaseException as e:
                    print("child failed:", repr(e), file=sys.stderr)
                    os._exit(1)
            pids.append(pid)
        sys.exit(max(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_blocking_calls_release_the_gil(env: Env) -> None:
    store = env.store()
    server = blocking.ServerDriver(store, info(0), fast_config(drain_seconds=0.5))
    server.start()
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)  # let the spinner start (not synchronisation: only a head start)
        before = ticks
        started = time.monotonic()
        server.stop()  # waits for the 0.5 s drain
        waited = time.monotonic() - started
        during = ticks - before
    finally:
        stop.set()
        t.join()
    assert waited >= 0.45
    assert during > 10_000, f"another thread ran only {during} loops while stop() waited"


def test_awaited_cache_hit_stays_on_the_event_loop_thread(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        async with (
            sr.ServerDriver(store, info(0), fast_config()),
            sr.ClientDriver(store, info(0), fast_config()) as c,
        ):
            assert c.compute_cached(NS, "u", SVC) is None
            assert await c.compute_linked_pod(NS, "u", SVC) == 0  # a miss: the store
            hit = c.compute_linked_pod(NS, "u", SVC)
            try:  # a hit finishes in its first step: no future, no runtime, no loop round
                hit.send(None)
                raise AssertionError("a cache hit suspended")
            except StopIteration as done:
                assert done.value == 0
            # Awaiting it never yields to the loop: a task scheduled meanwhile cannot run.
            ran = False

            async def other() -> None:
                nonlocal ran
                ran = True

            task = asyncio.ensure_future(other())
            for _ in range(1000):
                assert await c.compute_linked_pod(NS, "u", SVC) == 0
            assert not ran
            await task
            assert await asyncio.create_task(c.compute_linked_pod(NS, "u", SVC)) == 0

    asyncio.run(main())


def test_stubs_match_the_module(tmp_path: pathlib.Path) -> None:
    """mypy's stubtest fails when a stub and the built module disagree (a name, a parameter,
    a default, a missing or extra method)."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "stateful_route"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # the installed package, not a source tree
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_typed_example_type_checks(tmp_path: pathlib.Path) -> None:
    example = tmp_path / "example.py"
    example.write_text(
        textwrap.dedent(
            """
            import asyncio
            from typing import Optional
            from stateful_route import Store, ClientDriver, ServerDriver, BaseConfig, ServerInfo
            from stateful_route import RoutingState, StatefulRouteError, blocking

            async def main() -> int:
                store = Store.memory()
                info = ServerInfo(namespace="default", service_name="room", pod_index=0)
                async with ServerDriver(store, info, BaseConfig()) as server:
                    await server.set_routing_state(RoutingState.READY)
                    async with ClientDriver(store, info) as client:
                        pod: int = await client.compute_linked_pod("", "u", "room")
                        cached: Optional[int] = client.get_linked_in_cache("", "u", "room")
                        return pod

            def sync() -> Optional[int]:
                store = blocking.Store.memory()
                info = ServerInfo(namespace="default", service_name="room", pod_index=0)
                with blocking.ServerDriver(store, info), blocking.ClientDriver(store, info) as c:
                    try:
                        return c.compute_linked_pod("", "u", "room")
                    except StatefulRouteError as e:
                        print(e.code)
                        return None
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(example)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_many_concurrent_awaitables_all_complete(env: Env) -> None:
    """Results come back through one wake-up pipe per loop: none may be lost."""

    async def main() -> None:
        store = await env.astore()
        await store.set_link(NS, "u", SVC, 1, -1)
        for _ in range(20):
            got = await asyncio.wait_for(
                asyncio.gather(*(store.get_link_if_persist(NS, "u", SVC) for _ in range(500))),
                timeout=30,
            )
            assert got == [1] * 500
        cancelled = store.get_link(NS, "u", SVC)
        cancelled.cancel()  # its result is dropped when it arrives
        assert await store.get_link_if_persist(NS, "u", SVC) == 1

    asyncio.run(main())
