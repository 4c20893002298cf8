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


class ClientDriver(_native.ClientDriver):
    """The gateway side: ``ClientDriver(store, info, config=None)``; ``await init()`` first (or
    ``async with``).

    ``compute_linked_pod`` is a coroutine: the core's synchronous cache probe answers a hit on
    the event loop's own thread; only a miss awaits the store (on the library's runtime)."""

    __slots__ = ()

    async def compute_linked_pod(self, namespace: str, uid: str, service: str) -> int:
        """SPEC section 6 ``ComputeLinkedPod``: the pod serving ``uid`` for ``service``,
        placing a new user on the best pod. ``namespace`` is ``""`` or the driver's own."""
        pod = self.compute_cached(namespace, uid, service)
        if pod is not None:
            return pod
        return await self.compute_linked_pod_uncached(namespace, uid, service)


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
