"""``RoutingState``: whether a pod takes new users (SPEC section 1)."""

from __future__ import annotations

import enum

__all__ = ["RoutingState"]


class RoutingState(enum.Enum):
    """A pod's routing state. Its value is its name: methods that take a routing state
    also take the name, so ``set_routing_state("DENY_NEW_CALL")`` works as well."""

    READY = "READY"
    """Takes new users."""
    DENY_NEW_CALL = "DENY_NEW_CALL"
    """Keeps its linked users, takes no new ones (draining)."""
    SHUTDOWN = "SHUTDOWN"
    """Gone on purpose."""

    def __str__(self) -> str:
        return self.value
