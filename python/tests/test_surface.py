"""tests/vectors/surface.json (the core's public surface in one neutral spelling) against the
Python binding: for the asyncio classes of ``stateful_route`` and the blocking ones of
``stateful_route.blocking``, every listed method with its parameter names in order; every type
with its fields; the config defaults; the routing states, error codes and placement names."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

import stateful_route as sr
from stateful_route import blocking, errors

from conftest import NS, REPO, SVC, fast_config, info

SURFACE: dict[str, Any] = json.loads((REPO / "tests/vectors/surface.json").read_text())
MODULES = [sr, blocking]
# The classes with asyncio methods, whose blocking twins are in stateful_route.blocking; the
# other classes with listed methods (ServerInfo.from_env) are shared by both modules.
DRIVERS = ["ClientDriver", "ServerDriver", "Store"]


def parameter_names(method: Any) -> list[str]:
    """Parameter names in order, without ``self``/``cls`` (native methods have pyo3's
    ``__text_signature__``; keyword-only ones are listed after the positional ones)."""
    params = inspect.signature(method).parameters.values()
    return [p.name for p in params if p.name not in ("self", "cls")]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("cls_name", sorted(SURFACE["methods"]))
def test_methods(module: Any, cls_name: str) -> None:
    cls = getattr(module, cls_name)
    for name, listed in SURFACE["methods"][cls_name].items():
        assert callable(getattr(cls, name, None)), f"{module.__name__}.{cls_name}.{name}"
        got = parameter_names(getattr(cls, name))
        assert got == listed, f"{module.__name__}.{cls_name}.{name}"


def test_blocking_classes_are_the_native_classes_with_plain_methods() -> None:
    assert set(DRIVERS) <= set(SURFACE["methods"])
    for name in set(SURFACE["methods"]) - set(DRIVERS):
        assert getattr(blocking, name) is getattr(sr, name), name
    for name in DRIVERS:
        fast, slow = getattr(sr, name), getattr(blocking, name)
        assert slow is not fast and slow.__name__ == name
        assert issubclass(slow, getattr(sr._native, name)) and slow._blocking is True
    store = blocking.Store.memory()
    assert type(store) is blocking.Store and type(sr.Store.memory()) is sr.Store
    assert type(blocking.Store(sr.Store.memory())) is blocking.Store
    assert store.get_link(NS, "u", SVC) is None


@pytest.mark.parametrize("type_name", sorted(SURFACE["types"]))
def test_types_have_the_listed_fields(type_name: str) -> None:
    cls = getattr(sr, type_name)
    assert getattr(blocking, type_name) is cls
    for field in SURFACE["types"][type_name]:
        assert inspect.isdatadescriptor(inspect.getattr_static(cls, field)), f"{type_name}.{field}"


def test_pod_state_fields_have_their_values() -> None:
    store = blocking.Store.memory()
    with blocking.ServerDriver(store, info(0), fast_config()) as server:
        server.set_load_state(7)
        (state,) = store.pod_states(NS, SVC)
        want = dict(pod_index=0, routing_state=sr.RoutingState.READY, weight=100)
        assert {k: getattr(state, k) for k in want} == want
        assert state.update_ms > 0 and isinstance(state.load, int)
        assert {f: getattr(state, f) for f in SURFACE["types"]["PodState"]}


def test_base_config_defaults() -> None:
    c = sr.BaseConfig()
    got = {f["name"]: getattr(c, f["name"]) for f in SURFACE["config"]["BaseConfig"]}
    assert got == {f["name"]: f["default"] for f in SURFACE["config"]["BaseConfig"]}


def test_link_change_fields_have_their_values() -> None:
    store = blocking.Store.memory()
    gw = blocking.ClientDriver(store, info(0, "gw"))
    gw.init()
    got: list[sr.LinkChange] = []
    gw.on_link_changed(got.append)
    store.set_link(NS, "u", SVC, 1, -1)  # a new user's link: no change of a link
    store.set_link(NS, "u", SVC, 2, 60)
    store.remove_link(NS, "u", SVC)
    fields = SURFACE["types"]["LinkChange"]
    assert [{f: getattr(c, f) for f in fields} for c in got] == [
        dict(namespace=NS, service=SVC, uid="u", pod=2, persistent=False),
        dict(namespace=NS, service=SVC, uid="u", pod=None, persistent=False),
    ]
    gw.close()


def _keyword_default(field: dict[str, Any]) -> Any:
    """A StoreConfig field's default in Python: ``None`` (the core's default) for a nullable or
    valued field, the value itself for a flag (``propagation=True``)."""
    return field["default"] if field["type"] == "bool" else None


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_store_config_keywords_default_to_the_core(module: Any) -> None:
    """Python has no StoreConfig object: its fields are keyword-only arguments of the
    connect methods, ``None`` (the default) meaning the core's default; a flag's default is
    the core's value itself. ``Store.memory`` takes the fields that matter to it."""
    fields = SURFACE["config"]["StoreConfig"]
    for connect in ("connect", "connect_cluster", "connect_sentinel"):
        params = inspect.signature(getattr(module.Store, connect)).parameters
        for f in fields:
            name = f["name"]
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (connect, name)
            assert params[name].default is _keyword_default(f), (connect, name)
    memory = inspect.signature(module.Store.memory).parameters
    assert list(memory) == ["key_prefix", "propagation"]
    for f in fields:
        if f["name"] in memory:
            assert memory[f["name"]].kind is inspect.Parameter.KEYWORD_ONLY, f["name"]
            assert memory[f["name"]].default is _keyword_default(f), f["name"]


def test_store_config_defaults_are_applied() -> None:
    want = {f["name"]: f["default"] for f in SURFACE["config"]["StoreConfig"]}
    store = blocking.Store.memory()
    store.set_link(NS, "u", SVC, 1, -1)
    assert store._keys() and all(k.startswith(want["key_prefix"] + ":") for k in store._keys())
    # propagation (on by default): a move elsewhere drops a gateway's entry at once.
    assert want["propagation"] is True
    with blocking.ClientDriver(store, info(0, "gw")) as gw:
        assert gw.get_linked_pod(NS, "u", SVC) == 1 and gw.get_linked_in_cache(NS, "u", SVC) == 1
        store.set_link(NS, "u", SVC, 2, -1)
        assert gw.get_linked_in_cache(NS, "u", SVC) is None


def test_routing_states() -> None:
    assert [s.value for s in sr.RoutingState] == SURFACE["routing_states"]
    assert [s.name for s in sr.RoutingState] == SURFACE["routing_states"]


def test_every_error_code_has_its_class() -> None:
    assert list(errors.BY_CODE) == SURFACE["error_codes"]
    for code, cls in errors.BY_CODE.items():
        assert cls.code == code and issubclass(cls, sr.StatefulRouteError)
        assert getattr(sr, cls.__name__) is cls and getattr(blocking, cls.__name__) is cls
    with pytest.raises(errors.BY_CODE["INVALID_ARGUMENT"]):
        blocking.Store.memory().get_link(NS, None, SVC)  # type: ignore[arg-type]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_placement_names_are_accepted(module: Any) -> None:
    gw = module.ClientDriver(blocking.Store.memory(), info(0, "gw"))
    for name in SURFACE["placements"]:
        assert sr.BaseConfig(placement=name).placement == name
        gw.set_service_placement(SVC, name)
    assert sr.BaseConfig(placement="rendezvous", placement_load_factor=None).placement == (
        "rendezvous"
    )
    gw.set_service_placement(SVC, "rendezvous", load_factor=2.0)
