"""The blocking API: the classes of :mod:`stateful_route` with plain methods.

Each call waits for its answer with the GIL released, so other Python threads run meanwhile.
``with ServerDriver(...)`` starts/stops a pod and ``with ClientDriver(...)`` inits/closes a
client. A ``Store`` from either module works with the drivers of both.
"""

from __future__ import annotations

from . import (
    BaseConfig,
    Candidate,
    ClosedError,
    InternalError,
    InvalidArgumentError,
    InvalidConfigError,
    Link,
    LoadInput,
    NamespaceNotLocalError,
    NoAvailablePodError,
    PlacementRequest,
    PodState,
    PodUnavailableError,
    RoutingState,
    RoutingStateChange,
    ServerInfo,
    StatefulRouteError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    TrySetOutcome,
    set_log_level,
)
from ._native import BlockingClientDriver as ClientDriver
from ._native import BlockingServerDriver as ServerDriver
from ._native import BlockingStore as Store

__all__ = [
    "BaseConfig",
    "Candidate",
    "ClientDriver",
    "ClosedError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "Link",
    "LoadInput",
    "NamespaceNotLocalError",
    "NoAvailablePodError",
    "PlacementRequest",
    "PodState",
    "PodUnavailableError",
    "RoutingState",
    "RoutingStateChange",
    "ServerDriver",
    "ServerInfo",
    "StatefulRouteError",
    "Store",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TrySetOutcome",
    "set_log_level",
]
