"""The blocking API: the classes of :mod:`stateful_route` with plain methods.

Each call waits for its answer with the GIL released, so other Python threads run meanwhile.
``with ServerDriver(...)`` starts/stops a pod and ``with ClientDriver(...)`` inits/closes a
client. A ``Store`` from either module works with the drivers of both.

Each class here is the native class of :mod:`stateful_route` with ``_blocking = True``: the
native methods read that flag when an object is made and answer with values, not awaitables.
"""

from __future__ import annotations

from typing import Any

from . import *  # noqa: F403 (every name of stateful_route, then the three blocking classes)
from . import __all__ as __all__
from . import _native


class Store(_native.Store):
    """Where links and pod states live: ``Store.connect(url)`` (Redis) or ``Store.memory()``;
    ``Store(store)`` is the same store as ``store``, blocking."""

    __slots__ = ()
    _blocking = True


class ClientDriver(_native.ClientDriver):
    """The gateway side: ``ClientDriver(store, info, config=None)``; ``init()`` first (or
    ``with``)."""

    __slots__ = ()
    _blocking = True

    def __enter__(self) -> ClientDriver:
        self.init()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()


class ServerDriver(_native.ServerDriver):
    """The pod side: ``ServerDriver(store, info, config=None)``; ``start()`` to publish (or
    ``with``, which stops on exit)."""

    __slots__ = ()
    _blocking = True

    def __enter__(self) -> ServerDriver:
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()
