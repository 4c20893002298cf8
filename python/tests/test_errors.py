"""Every error class where SPEC raises it, bad arguments writing nothing, config validation."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Callable

import pytest

import stateful_route as sr
from conftest import NS, SVC, Env, fast_config, info
from stateful_route import blocking, errors

CLASSES = {
    "INVALID_ARGUMENT": sr.InvalidArgumentError,
    "INVALID_CONFIG": sr.InvalidConfigError,
    "NAMESPACE_NOT_LOCAL": sr.NamespaceNotLocalError,
    "NO_AVAILABLE_POD": sr.NoAvailablePodError,
    "POD_UNAVAILABLE": sr.PodUnavailableError,
    "STORE_UNAVAILABLE": sr.StoreUnavailableError,
    "STORE_ERROR": sr.StoreError,
    "TIMEOUT": sr.StoreTimeoutError,
    "CLOSED": sr.ClosedError,
    "INTERNAL": sr.InternalError,
}


def test_one_class_per_code_under_one_base() -> None:
    assert sorted(errors.__all__[1:]) == sorted(c.__name__ for c in CLASSES.values())
    for code, cls in CLASSES.items():
        assert cls.code == code
        assert issubclass(cls, sr.StatefulRouteError)
        assert getattr(blocking, cls.__name__) is cls
    assert sr.StoreTimeoutError is not TimeoutError


def test_errors_where_spec_raises_them(env: Env) -> None:
    store = env.store()
    cfg = fast_config()
    with blocking.ClientDriver(store, info(0), cfg) as c:
        with pytest.raises(sr.NoAvailablePodError) as no_pod:
            c.compute_linked_pod(NS, "u", SVC)
        with pytest.raises(sr.NoAvailablePodError):
            c.best_pod(SVC)
        with pytest.raises(sr.NamespaceNotLocalError) as other_ns:
            c.compute_linked_pod("other", "u", SVC)
        with pytest.raises(sr.InvalidArgumentError) as bad_uid:
            c.compute_linked_pod(NS, "a}b", SVC)
        with blocking.ServerDriver(store, info(3), cfg) as p3:
            with pytest.raises(sr.InvalidArgumentError):
                p3.start()  # a second start
            p3.set_linked_pod(NS, "owned", SVC, 3)
        c.refresh_service(SVC)
        with pytest.raises(sr.PodUnavailableError) as gone:
            c.compute_linked_pod(NS, "owned", SVC)
    with pytest.raises(sr.ClosedError) as closed:
        c.compute_linked_pod(NS, "u", SVC)
    with pytest.raises(sr.ClosedError):
        c.init()
    fresh = blocking.ClientDriver(store, info(0), cfg)
    with pytest.raises(sr.ClosedError, match="init"):
        fresh.compute_linked_pod(NS, "u", SVC)
    with pytest.raises(sr.InvalidConfigError) as bad_cfg:
        sr.BaseConfig(cpu_factor=1.5)
    for e, code in [
        (no_pod, "NO_AVAILABLE_POD"),
        (other_ns, "NAMESPACE_NOT_LOCAL"),
        (bad_uid, "INVALID_ARGUMENT"),
        (gone, "POD_UNAVAILABLE"),
        (closed, "CLOSED"),
        (bad_cfg, "INVALID_CONFIG"),
    ]:
        assert e.value.code == code
        assert str(e.value).startswith(code + ": ")
        assert e.value.message and not e.value.message.startswith(code)
    assert gone.value.pod_index == 3
    assert "other" in str(other_ns.value) and "uid" in str(bad_uid.value)


def _silent_server() -> int:
    """A TCP server that accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    held: list[Any] = []

    def accept() -> None:
        while True:
            held.append(s.accept())

    threading.Thread(target=accept, daemon=True).start()
    return int(s.getsockname()[1])


def test_store_errors_from_redis(redis_url: str) -> None:
    # Store failures (unreachable, silent, bad data) exist only for a networked store, so this
    # test runs on Redis only (it used to run on memory too, returning early as a pass).
    env = Env("redis", redis_url)
    with pytest.raises(sr.StoreUnavailableError) as down:
        blocking.Store.connect("redis://127.0.0.1:1", connect_timeout=2)
    assert "127.0.0.1:1" in str(down.value)
    with pytest.raises(sr.StoreTimeoutError) as slow:
        blocking.Store.connect(f"redis://127.0.0.1:{_silent_server()}", connect_timeout=0.3)
    assert slow.value.code == "TIMEOUT"

    async def connect_async() -> None:
        await sr.Store.connect("redis://127.0.0.1:1", connect_timeout=2)

    with pytest.raises(sr.StoreUnavailableError):
        asyncio.run(connect_async())
    store = env.store()
    env.redis_cli("HSET", f"{env.prefix}:{{{NS}:lk:w}}{SVC}", "not", "a string")
    with pytest.raises(sr.StoreError) as bad:
        store.get_link(NS, "w", SVC)
    assert bad.value.code == "STORE_ERROR"
    with pytest.raises(sr.InvalidArgumentError):
        blocking.Store.connect(None)  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidConfigError, match="key_prefix"):
        blocking.Store.connect(env.url, key_prefix="a:b")
    with pytest.raises(sr.InvalidConfigError, match="command_timeout"):
        blocking.Store.connect(env.url, command_timeout=0)


# (label, call) pairs: each must raise InvalidArgumentError and write nothing.
BAD_CALLS: list[tuple[str, Callable[[Any, Any, Any], Any]]] = [
    ("uid None", lambda c, s, st: c.compute_linked_pod(NS, None, SVC)),
    ("uid int", lambda c, s, st: c.compute_linked_pod(NS, 42, SVC)),
    ("uid bytes", lambda c, s, st: c.compute_linked_pod(NS, b"u", SVC)),
    ("uid with }", lambda c, s, st: c.compute_linked_pod(NS, "a}b", SVC)),
    ("uid with {", lambda c, s, st: c.compute_linked_pod(NS, "a{b", SVC)),
    ("uid empty", lambda c, s, st: c.compute_linked_pod(NS, "", SVC)),
    ("uid control", lambda c, s, st: c.compute_linked_pod(NS, "a\nb", SVC)),
    ("uid surrogate", lambda c, s, st: c.compute_linked_pod(NS, "a\ud800", SVC)),
    ("uid 513 bytes", lambda c, s, st: c.compute_linked_pod(NS, "x" * 513, SVC)),
    ("uid 1 MiB", lambda c, s, st: c.compute_linked_pod(NS, "x" * (1 << 20), SVC)),
    ("namespace None", lambda c, s, st: c.compute_linked_pod(None, "u", SVC)),
    ("namespace a:b", lambda c, s, st: c.compute_linked_pod("a:b", "u", SVC)),
    ("namespace UPPER", lambda c, s, st: c.compute_linked_pod("UPPER", "u", SVC)),
    ("service ro:om", lambda c, s, st: c.compute_linked_pod(NS, "u", "ro:om")),
    ("service None", lambda c, s, st: c.compute_linked_pod(NS, "u", None)),
    ("service huge", lambda c, s, st: c.compute_linked_pod(NS, "u", "s" * 100_000)),
    ("pod -1", lambda c, s, st: s.set_linked_pod(NS, "u", SVC, -1)),
    ("pod 2**31", lambda c, s, st: s.set_linked_pod(NS, "u", SVC, 2**31)),
    ("pod 2**70", lambda c, s, st: s.set_linked_pod(NS, "u", SVC, 2**70)),
    ("pod str", lambda c, s, st: s.set_linked_pod(NS, "u", SVC, "1")),
    ("pod float", lambda c, s, st: s.set_linked_pod(NS, "u", SVC, 1.0)),
    ("pod bool", lambda c, s, st: s.set_linked_pod(NS, "u", SVC, True)),
    ("pod None", lambda c, s, st: s.set_linked_pod(NS, "u", SVC, None)),
    ("server uid }", lambda c, s, st: s.set_linked_pod(NS, "x}y", SVC, 1)),
    ("ttl 0", lambda c, s, st: c.set_linked_pod_if_absent(NS, "u", SVC, 1, 0)),
    ("ttl -2", lambda c, s, st: st.set_link(NS, "u", SVC, 1, -2)),
    ("ttl None", lambda c, s, st: st.set_link(NS, "u", SVC, 1, None)),
    ("ttl str", lambda c, s, st: st.try_set_link(NS, "u", SVC, 1, "60")),
    ("delay str", lambda c, s, st: s.remove_linked_pod(NS, "u", SVC, "5")),
    ("store namespace ''", lambda c, s, st: st.set_link("", "u", SVC, 1, -1)),
    ("batch with None", lambda c, s, st: c.batch_get_linked_pod(NS, ["ok", None], SVC)),
    ("batch a str", lambda c, s, st: c.batch_get_linked_pod(NS, "ok", SVC)),
    ("batch with }", lambda c, s, st: st.batch_get_links(NS, ["ok", "bad}"], SVC)),
    ("load -1", lambda c, s, st: s.set_load_state(-1)),
    ("load None", lambda c, s, st: s.set_load_state(None)),
    ("routing state word", lambda c, s, st: s.set_routing_state("BUSY")),
    ("routing state int", lambda c, s, st: s.set_routing_state(1)),
    ("workload word", lambda c, s, st: c.set_workload_state(SVC, "not a word")),
    ("set_cache pod", lambda c, s, st: c.set_cache(NS, "u", SVC, -3)),
    ("listener", lambda c, s, st: c.on_routing_state_changed(None)),
]


@pytest.mark.parametrize("label,call", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_arguments_raise_and_write_nothing_blocking(
    env: Env, label: str, call: Callable[[Any, Any, Any], Any]
) -> None:
    store = env.store()
    cfg = fast_config()
    with (
        blocking.ServerDriver(store, info(1), cfg) as s,
        blocking.ClientDriver(store, info(1), cfg) as c,
    ):
        before = env.keys(store)
        with pytest.raises(sr.InvalidArgumentError) as e:
            call(c, s, store)
        assert e.value.code == "INVALID_ARGUMENT" and "invalid" in str(e.value), label
        assert env.keys(store) == before, label
        assert s.get_load_state() == 0 and s.get_routing_state() is sr.RoutingState.READY


def test_bad_arguments_raise_and_write_nothing_asyncio(env: Env) -> None:
    async def main() -> None:
        store = await env.astore()
        cfg = fast_config()
        async with (
            sr.ServerDriver(store, info(1), cfg) as s,
            sr.ClientDriver(store, info(1), cfg) as c,
        ):
            before = env.keys(store)
            for label, call in BAD_CALLS:
                with pytest.raises(sr.InvalidArgumentError):
                    # Raised when called or when awaited: either way before any write.
                    result = call(c, s, store)
                    if hasattr(result, "__await__"):
                        await result
                    pytest.fail(label)
            assert env.keys(store) == before

    asyncio.run(main())


@pytest.mark.parametrize(
    "field,value",
    [
        ("service_state_update_period_seconds", 0),
        ("service_state_update_period_seconds", float("nan")),
        ("service_state_update_period_seconds", "30"),
        ("cpu_factor", 1.5),
        ("cpu_factor", -0.1),
        ("cpu_factor", True),
        ("temp_link_info_cache_time_seconds", 0),
        ("temp_link_info_cache_time_seconds", -5),
        ("temp_link_info_cache_time_seconds", 2.5),
        ("user_link_info_cache_time_seconds", 300),
        ("stale_after_seconds", 0),
        ("load_range", -1),
        ("load_range", 2**40),
        ("placement", "fastest"),
        ("placement", 3),
        ("cache_capacity", "big"),
        ("drain_seconds", -1),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(sr.InvalidConfigError) as e:
        sr.BaseConfig(**{field: value})
    assert field in str(e.value)


def test_config_defaults_and_server_info() -> None:
    d = sr.BaseConfig()
    assert (
        d.service_state_update_period_seconds,
        d.cpu_factor,
        d.temp_link_info_cache_time_seconds,
        d.user_link_info_cache_time_seconds,
        d.stale_after_seconds,
        d.load_range,
        d.placement,
        d.cache_capacity,
        d.drain_seconds,
    ) == (30.0, 0.7, 300, 240, None, 500, "p2c", 100_000, 0.0)
    c = sr.BaseConfig(stale_after_seconds=2, placement="round_robin", drain_seconds=1)
    assert (c.stale_after_seconds, c.placement, c.drain_seconds) == (2.0, "round_robin", 1.0)
    assert "round_robin" in repr(c)
    with pytest.raises(TypeError):
        sr.BaseConfig(30)  # type: ignore[misc]  # keyword-only
    i = sr.ServerInfo(namespace="default", service_name="room", pod_index=0)
    assert (i.namespace, i.service_name, i.pod_index) == ("default", "room", 0)
    assert i == sr.ServerInfo(namespace="default", service_name="room", pod_index=0)
    for kw, field in [
        (dict(namespace="a:b", service_name="room", pod_index=0), "namespace"),
        (dict(namespace="", service_name="room", pod_index=0), "namespace"),
        (dict(namespace="ns", service_name="ro}om", pod_index=0), "service_name"),
        (dict(namespace="ns", service_name="room", pod_index=-1), "pod_index"),
        (dict(namespace="ns", service_name=None, pod_index=0), "service_name"),
    ]:
        with pytest.raises(sr.InvalidArgumentError) as e:
            sr.ServerInfo(**kw)
        assert field in str(e.value)
    store = sr.Store.memory()
    with pytest.raises(sr.InvalidArgumentError, match="info"):
        sr.ClientDriver(store, "not info")  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentError, match="store"):
        sr.ClientDriver(None, i)  # type: ignore[arg-type]
    with pytest.raises(sr.InvalidArgumentError, match="config"):
        sr.ServerDriver(store, i, {"cpu_factor": 0})  # type: ignore[arg-type]
    # A store of either module works with the drivers of both.
    blocking.ClientDriver(store, i).init()
