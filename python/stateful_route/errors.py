"""Exceptions of stateful_route: one class per error kind of the core (SPEC section 8).

``except StatefulRouteError`` catches every error the library raises. Each class has ``code``
(the stable code shared by every binding, e.g. ``"NO_AVAILABLE_POD"``) and each instance has
``message`` (the text without the code). ``str(err)`` is ``"CODE: message"``.

Arguments of the wrong Python type (``None`` for a uid, a ``str`` for a pod, a ``bool``, a
negative or huge number) raise ``InvalidArgumentError`` too, naming the argument; wrong config
values (``BaseConfig``, store settings) raise ``InvalidConfigError``.

The timeout class is ``StoreTimeoutError`` (code ``"TIMEOUT"``), not ``TimeoutError``, so that
``from stateful_route import *`` never shadows the builtin.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "StatefulRouteError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "NamespaceNotLocalError",
    "NoAvailablePodError",
    "PodUnavailableError",
    "StoreUnavailableError",
    "StoreError",
    "StoreTimeoutError",
    "ClosedError",
    "InternalError",
]


class StatefulRouteError(Exception):
    """Base class of every error raised by stateful_route."""

    code: str = ""
    """The stable error code, e.g. ``"NO_AVAILABLE_POD"``."""

    message: str
    """What was wrong, with the value (without the code)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.message = str(args[0]) if args else ""


class InvalidArgumentError(StatefulRouteError):
    """An argument broke its rule (wrong type, bad identifier, bad ttl); nothing was written."""

    code = "INVALID_ARGUMENT"


class InvalidConfigError(StatefulRouteError):
    """A configuration value is out of range; the message names the field."""

    code = "INVALID_CONFIG"


class NamespaceNotLocalError(StatefulRouteError):
    """The namespace is valid but is not the driver's own (use ``""`` or the local one)."""

    code = "NAMESPACE_NOT_LOCAL"


class NoAvailablePodError(StatefulRouteError):
    """The service has no routable pod for a new user."""

    code = "NO_AVAILABLE_POD"


class PodUnavailableError(StatefulRouteError):
    """The user is linked persistently to a pod that is not alive (``pod_index`` says which)."""

    code = "POD_UNAVAILABLE"
    pod_index: Optional[int] = None


class StoreUnavailableError(StatefulRouteError):
    """The store cannot be reached."""

    code = "STORE_UNAVAILABLE"


class StoreError(StatefulRouteError):
    """The store answered with an error or with data it should not hold."""

    code = "STORE_ERROR"


class StoreTimeoutError(StatefulRouteError):
    """A store call did not finish within its deadline (code ``TIMEOUT``)."""

    code = "TIMEOUT"


class ClosedError(StatefulRouteError):
    """The driver is not started/initialised yet, or already stopped/closed; or the process
    was forked after the library had started its threads."""

    code = "CLOSED"


class InternalError(StatefulRouteError):
    """A bug in stateful_route."""

    code = "INTERNAL"


BY_CODE: dict[str, type[StatefulRouteError]] = {
    c.code: c for c in StatefulRouteError.__subclasses__()
}
"""The exception class of each error code (``BY_CODE["TIMEOUT"] is StoreTimeoutError``): the
library raises ``BY_CODE[code]``, so the code of every error is decided once, in the core."""
