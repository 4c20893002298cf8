"""Edge values of every float field of BaseConfig (issue item 8), property style: each value is
either rejected with InvalidConfigError naming the field, or accepted, and then a pod with that
config starts on the memory store, its state is readable through a client with the same config
(which also routes a user to it), and it keeps publishing (a later publish is seen). Nothing
panics, nothing silently stops."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from conftest import NS, SVC, eventually, info

import stateful_route as sr
from stateful_route import blocking

FLOAT_FIELDS = [
    "service_state_update_period_seconds",
    "cpu_factor",
    "stale_after_seconds",
    "drain_seconds",
    "serve_stale_seconds",
    "slow_start_seconds",
    "placement_load_factor",
]
EDGE_VALUES = [
    math.nan,
    math.inf,
    -math.inf,
    5e-324,  # the smallest subnormal
    1e-300,
    -0.0,
    0.0,
    1e300,
    1.7976931348623157e308,  # the largest double
    -1.0,
    0.5,
]
# The rest of the config: short periods (so that a second publish comes quickly), CPU off.
BASE: dict[str, Any] = {"service_state_update_period_seconds": 0.2, "cpu_factor": 0.0}


def _config(field: str, value: float) -> sr.BaseConfig:
    kw = {**BASE, field: value}
    if field == "placement_load_factor":
        kw["placement"] = "rendezvous"  # the only placement with a load factor
    return sr.BaseConfig(**kw)


def _names_the_field(message: str, field: str) -> bool:
    # The core names a bad rendezvous load factor under "placement" ("rendezvous load_factor
    # … must be >= 1"); every other field by its own name.
    if field == "placement_load_factor":
        return "placement" in message and "load_factor" in message
    return field in message


def _publishes(cfg: sr.BaseConfig) -> None:
    """A pod with `cfg` starts on the memory store; a client with `cfg` reads its state, and
    a later publish (a newer update_ms) shows that it keeps publishing."""
    store = blocking.Store.memory()
    server = blocking.ServerDriver(store, info(0), cfg)
    server.start()
    try:
        with blocking.ClientDriver(store, info(0), cfg) as client:
            states = client.pod_states(SVC)
            assert [(s.pod_index, s.routing_state) for s in states] == [(0, sr.RoutingState.READY)]
            first = states[0].update_ms
            period = cfg.service_state_update_period_seconds

            def newer() -> bool:
                client.refresh_service(SVC)
                return client.pod_states(SVC)[0].update_ms > first

            eventually("a second publish", newer, within=period + 5)
            assert client.is_pod_alive(SVC, 0) is True
            assert client.compute_linked_pod(NS, "u", SVC) == 0
            assert [s.pod_index for s in store.pod_states(NS, SVC)] == [0]
    finally:
        server.stop()
    assert store.pod_states(NS, SVC)[0].routing_state is sr.RoutingState.SHUTDOWN


@pytest.mark.parametrize(
    "field,value",
    list(itertools.product(FLOAT_FIELDS, EDGE_VALUES)),
    ids=[f"{f}={v!r}" for f, v in itertools.product(FLOAT_FIELDS, EDGE_VALUES)],
)
def test_an_edge_value_is_rejected_by_name_or_works(field: str, value: float) -> None:
    try:
        cfg = _config(field, value)
    except sr.StatefulRouteError as e:
        assert isinstance(e, sr.InvalidConfigError), repr(e)
        assert e.code == "INVALID_CONFIG"
        assert _names_the_field(e.message, field), e.message
        return
    got = getattr(cfg, field)
    if field == "placement_load_factor" and value == 0:
        value = 1.25  # 0 is the default bound (Placement::from_setting, in every binding)
    assert got == value and math.copysign(1, got) == math.copysign(1, value), (got, value)
    _publishes(cfg)


def test_the_edge_values_split_as_the_documented_bounds_say() -> None:
    """Which values are accepted: the bounds of the README (period and stale_after 1 ms to one
    day, drain/serve_stale/slow_start 0 to one day, cpu_factor in [0, 1], a rendezvous load
    factor finite and >= 1); NaN and infinities never."""

    def accepted(field: str) -> list[float]:
        out = []
        for v in EDGE_VALUES:
            try:
                _config(field, v)
            except sr.InvalidConfigError:
                continue
            out.append(v)
        return out

    day = [5e-324, 1e-300, -0.0, 0.0, 0.5]
    assert accepted("service_state_update_period_seconds") == [0.5]
    assert accepted("stale_after_seconds") == [0.5]
    assert accepted("cpu_factor") == day
    assert accepted("drain_seconds") == day
    assert accepted("serve_stale_seconds") == day
    assert accepted("slow_start_seconds") == day
    # 0 is the default bound (Placement::from_setting, the same in every binding).
    assert accepted("placement_load_factor") == [-0.0, 0.0, 1e300, 1.7976931348623157e308]
