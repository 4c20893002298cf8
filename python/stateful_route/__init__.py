"""Sticky, load-aware user-to-pod routing for stateful services (asyncio API).

Every method that touches the store returns an awaitable; so do ``init``/``close`` of a client
and ``set_load_state`` of a server. Cache-only probes (``compute_cached``,
``get_linked_in_cache``, ``cache_expired``, ``cache_len``) and local getters are plain calls.
A cache hit of ``await client.compute_linked_pod(...)`` is answered on the event loop's own
thread without a trip to the library's runtime.

The same classes with plain (blocking) methods are in :mod:`stateful_route.blocking`.
Awaitables are asyncio futures (or already-done awaitables): ``await`` them, or wrap them with
``asyncio.ensure_future`` (``asyncio.create_task`` takes coroutines only).

Operators: ``client.metrics()`` (a :class:`MetricsSnapshot`), ``client.metrics_text()``
(Prometheus text), ``await client.explain_placement(ns, uid, service)`` (an
:class:`Explanation`), :func:`stop_on_signal` (graceful shutdown on SIGTERM) and, with
``prometheus_client`` installed, :class:`stateful_route.prometheus.StatefulRouteCollector`.

Core log events go to the ``logging`` logger ``stateful_route`` (level INFO and above are
forwarded; see :func:`set_log_level`).
"""

from __future__ import annotations

import atexit
import os
import weakref
from time import monotonic as _monotonic
from typing import Any, Awaitable

from . import _native
from ._native import (
    BaseConfig,
    Candidate,
    ExplainedLink,
    ExplainedPod,
    Explanation,
    Link,
    LinkChange,
    LoadInput,
    MetricsSnapshot,
    PlacementRequest,
    PodMetrics,
    PodState,
    PropagationMetrics,
    RoutingStateChange,
    Sample,
    ServerDriver,
    ServerInfo,
    ServiceMetrics,
    Store,
    StoreCallMetrics,
    TrySetOutcome,
    _at_exit,
    metric_families,
    set_log_level,
)
from .errors import *  # noqa: F403 (the exception classes: errors.__all__)
from .shutdown import stop_on_signal
from .types import RoutingState

atexit.register(_at_exit)

# At most this many front-cache entries per driver (fewer if its cache_capacity is smaller).
_FRONT_CAPACITY = 65536


class _Front:
    """One service's part of a driver's front cache: uid -> (pod, expiry, stripe, epoch), and
    the hits it answered since they were last added to the core's metrics."""

    __slots__ = ("links", "hits")

    def __init__(self) -> None:
        self.links: dict[str, tuple[int, float, int, int]] = {}
        self.hits = 0


# Drivers whose front caches a forked child must forget (the child's core is not running).
_drivers: weakref.WeakSet[ClientDriver] = weakref.WeakSet()


def _forget_fronts_in_child() -> None:
    for d in list(_drivers):
        d._fronts = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_fronts_in_child)


class ClientDriver(_native.ClientDriver):
    """The gateway side: ``ClientDriver(store, info, config=None)``; ``await init()`` first (or
    ``async with``).

    ``compute_linked_pod`` is a coroutine. A repeated hit is answered by a front cache in
    Python, validated by the core (README, "Front caches"): an entry holds what the core
    answered, for as long as the core said it may, and only while the epoch the core keeps for
    its key (in shared memory, bumped by every change that can make the answer wrong) is the
    one it was cached with. Otherwise the core's synchronous cache probe answers on the event
    loop's own thread; only a miss awaits the store (on the library's runtime)."""

    __slots__ = ("_fronts", "_epochs", "_ns", "_held", "_cap", "__weakref__")
    _fronts: dict[str, _Front]
    _epochs: memoryview
    _ns: str
    _held: int
    _cap: int

    def __new__(cls, *args: Any, **kwargs: Any) -> ClientDriver:
        # In __new__, not __init__: a subclass's __init__ need not call ours.
        self = super().__new__(cls, *args, **kwargs)
        self._fronts = {}
        self._epochs = self._front_epochs().cast("I")
        self._ns = self.server_info.namespace
        self._held = 0
        self._cap = min(self.config.cache_capacity, _FRONT_CAPACITY)
        _drivers.add(self)
        return self

    async def compute_linked_pod(self, namespace: str, uid: str, service: str) -> int:
        """SPEC section 6 ``ComputeLinkedPod``: the pod serving ``uid`` for ``service``,
        placing a new user on the best pod. ``namespace`` is ``""`` or the driver's own."""
        try:
            front = self._fronts.get(service)
            e = front.links.get(uid) if front is not None else None
            if (
                e is not None
                and e[1] > _monotonic()
                and self._epochs[e[2]] == e[3]
                and (namespace == "" or namespace == self._ns)
            ):
                front.hits += 1  # type: ignore[union-attr]
                return e[0]
        except Exception:  # an argument that cannot be hashed or compared: the core names it
            pass
        asked = _monotonic()
        hit = self._compute_front(namespace, uid, service)
        if hit is None:
            return await self.compute_linked_pod_uncached(namespace, uid, service)
        pod, valid, stripe, epoch = hit
        if valid > 0.0 and self._cap > 0:
            self._keep(service, uid, (pod, asked + valid, stripe, epoch))
        return pod

    def _keep(self, service: str, uid: str, entry: tuple[int, float, int, int]) -> None:
        front = self._fronts.get(service)
        new = front is None or uid not in front.links
        if new and self._held >= self._cap:  # full: start over (the core's cache holds all)
            self._flush_hits()
            self._fronts = {}
            self._held = 0
            front = None
        if front is None:
            front = self._fronts[service] = _Front()
        if new:
            self._held += 1
        front.links[uid] = entry

    def _flush_hits(self) -> None:
        for service, front in self._fronts.items():
            if front.hits:
                self._add_front_hits(service, front.hits)
                front.hits = 0

    def metrics(self) -> MetricsSnapshot:
        self._flush_hits()
        return super().metrics()

    def metrics_text(self) -> str:
        self._flush_hits()
        return super().metrics_text()

    def close(self) -> Awaitable[None]:
        self._flush_hits()
        return super().close()


__all__ = [
    "BaseConfig",
    "Candidate",
    "ClientDriver",
    "ClosedError",
    "ExplainedLink",
    "ExplainedPod",
    "Explanation",
    "InternalError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "Link",
    "LinkChange",
    "LoadInput",
    "MetricsSnapshot",
    "NamespaceNotLocalError",
    "NoAvailablePodError",
    "PlacementRequest",
    "PodMetrics",
    "PodState",
    "PodUnavailableError",
    "PropagationMetrics",
    "RoutingState",
    "RoutingStateChange",
    "Sample",
    "ServerDriver",
    "ServerInfo",
    "ServiceMetrics",
    "StatefulRouteError",
    "Store",
    "StoreCallMetrics",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TrySetOutcome",
    "metric_families",
    "set_log_level",
    "stop_on_signal",
]
