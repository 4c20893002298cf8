"""``RoutingState``: whether a pod takes new users (SPEC section 1)."""

from __future__ import annotations

import enum

__all__ = ["RoutingState"]


class RoutingState(str, enum.Enum):
    """A pod's routing state. Members are ``str`` equal to their name, so
    ``set_routing_state("DENY_NEW_CALL")`` works as well as the member."""

    READY = "READY"
    """Takes new users."""
    DENY_NEW_CALL = "DENY_NEW_CALL"
    """Keeps its linked users, takes no new ones (draining)."""
    SHUTDOWN = "SHUTDOWN"
    """Gone on purpose."""

    def __str__(self) -> str:
        return self.value
