#!/usr/bin/env python3
"""The C API against tests/vectors/surface.json (the core's surface in one neutral spelling).

Parses include/stateful_route.h for the sr_* functions and structs and runs the program built
from bindings/c/tests/surface.c (its path is the first argument) for the defaults, the status
names and the placement names. Checks, in the C spelling (sr_ prefixes, snake_case):
- every config field and type field is a field of its struct (sr_base_config, sr_pod_state, ...),
  with the defaults of sr_base_config_default / sr_store_config_default (null = 0 or NULL);
- every routing state is SR_ROUTING_<NAME> and every error code SR_<CODE>, with the number of
  its place in the list, and sr_status_name gives the code's name (the core's ErrorKind::as_str);
- every placement name is accepted by sr_client_new;
- every method of Store / ClientDriver / ServerDriver is sr_store_<m> / sr_client_<m> /
  sr_server_<m>, its parameters in order after the handle, in C's spelling (below); a static
  method of a type (ServerInfo.from_env) is sr_<type>_<m> (sr_server_info_from_env), its
  parameters in order;
- the structured metrics snapshot (MetricsSnapshot and its parts) has no C struct: C returns
  the flat list of Sample (sr_sample) instead, as surface.json's "about" says.
C's spelling of a parameter or field: the same name, or with the unit or kind it carries
(`pod` -> `pod_index`, `ttl` -> `ttl_seconds`, `connect_timeout` -> `connect_timeout_ms`), and
`namespace`, `new`, `old` (C++ keywords) as `ns` / `namespace_name`, `new_state`, `old_state`.
A config field with a `c_go` key is spelled in C (and Go) as that key's first word, e.g.
`propagation` (default true) as `disable_propagation`: a bool so spelled is the negation, so
that the zero value keeps the default (its C default is the surface default negated).
Out-parameters (`*_out`), array lengths (`*_len`) and a callback's `release` and `user_data`
are C's own. Exits non-zero, listing every mismatch.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SURFACE = json.loads((ROOT / "tests/vectors/surface.json").read_text())
HEADER = (ROOT / "include/stateful_route.h").read_text()
HANDLES = {"Store": "sr_store_", "ClientDriver": "sr_client_", "ServerDriver": "sr_server_"}
# Types whose methods are static in C: no handle comes first.
STATIC = {"ServerInfo": "sr_server_info_"}
# The structured snapshot: C and Go return the flat list of Sample instead.
SNAPSHOT_ONLY = {"MetricsSnapshot", "ServiceMetrics", "PodMetrics", "StoreCallMetrics", "PropagationMetrics"}
ALIASES = {"namespace": ["ns", "namespace_name"], "new": ["new_state"], "old": ["old_state"]}
SUFFIXES = ["", "_index", "_seconds", "_ms"]
C_ONLY = {"release", "user_data"}

problems = []


def spellings(name):
    return [a for a in ALIASES.get(name, [])] + [name + s for s in SUFFIXES]


def c_name(surface_name, names):
    """The C name of `surface_name` among `names`, or None."""
    return next((n for n in spellings(surface_name) if n in names), None)


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


CODE = strip_comments(HEADER)
FUNCS = {}
for m in re.finditer(r"\b(sr_\w+)\(([^()]*(?:\([^()]*\)[^()]*)*)\);", CODE):
    params = []
    for p in m.group(2).split(","):
        p = p.strip()
        if p and p != "void":
            params.append(re.findall(r"\w+", p)[-1])
    FUNCS[m.group(1)] = params
STRUCTS = {}
for m in re.finditer(r"typedef struct (sr_\w+) \{(.*?)\} \1;", CODE, flags=re.S):
    STRUCTS[m.group(1)] = [f.split()[-1].lstrip("*") for f in m.group(2).split(";") if f.strip()]
ENUMS = {}
for m in re.finditer(r"typedef enum (sr_\w+) \{(.*?)\} \1;", CODE, flags=re.S):
    ENUMS[m.group(1)] = {
        k.strip(): int(v) for k, v in re.findall(r"(\w+)\s*=\s*(-?\d+)", m.group(2))
    }


def snake(camel):
    return "sr_" + re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def c_go(field):
    """The C/Go spelling of a config field (its `c_go` key's first word) and its default there."""
    if "c_go" not in field:
        return field["name"], field["default"]
    name = field["c_go"].split()[0]
    want = field["default"]
    if field["type"] == "bool" and not name.startswith(field["name"]):
        want = not want
    return name, want


def check_fields(kind, type_name, fields):
    struct = snake(type_name)
    if struct not in STRUCTS:
        problems.append(f"{kind} {type_name}: no struct {struct}")
        return {}
    names = {}
    for f in fields:
        n = c_name(f, STRUCTS[struct])
        if n is None:
            problems.append(f"{kind} {type_name}.{f}: not a field of {struct} {STRUCTS[struct]}")
        names[f] = n
    return names


printed = dict(
    line.split("=", 1)
    for line in subprocess.run(
        [sys.argv[1], *SURFACE["placements"]], check=True, capture_output=True, text=True
    ).stdout.splitlines()
)

for type_name, fields in SURFACE["config"].items():
    names = check_fields("config", type_name, [c_go(f)[0] for f in fields])
    for f in fields:
        spelled, want = c_go(f)
        n = names.get(spelled)
        if n is None:
            continue
        got = printed.get(f"{type_name}.{n}")
        if f["type"] == "bytes":
            ok = (want is None) == (got == "null")
        elif f["type"] == "string":
            ok = got == want
        else:
            scale = 1000 if n.endswith("_ms") and not f["name"].endswith("_ms") else 1
            ok = got is not None and float(got) == (0 if want is None else want) * scale
        if not ok:
            problems.append(f"config {type_name}.{spelled}: default {want!r}, C {n} = {got!r}")

for type_name, fields in SURFACE["types"].items():
    if type_name in SNAPSHOT_ONLY:
        if snake(type_name) in STRUCTS:
            problems.append(f"type {type_name}: C returns Sample lists, yet has {snake(type_name)}")
        continue
    check_fields("type", type_name, fields)

routing = ENUMS.get("sr_routing_state", {})
for i, state in enumerate(SURFACE["routing_states"]):
    if routing.get(f"SR_ROUTING_{state}") != i:
        problems.append(f"routing state {state}: SR_ROUTING_{state} is not {i}")

status = ENUMS.get("sr_status", {})
for i, code in enumerate(SURFACE["error_codes"], start=1):
    if status.get(f"SR_{code}") != i:
        problems.append(f"error code {code}: SR_{code} is not {i}")
    if printed.get(f"status.{i}") != code:
        problems.append(f"error code {code}: sr_status_name({i}) = {printed.get(f'status.{i}')!r}")
n_codes = len(SURFACE["error_codes"])
if set(status) != {"SR_OK", *(f"SR_{c}" for c in SURFACE["error_codes"])}:
    problems.append(f"sr_status has other codes: {sorted(status)}")
for i in (-1, n_codes + 1, n_codes + 2):
    if printed.get(f"status.{i}") != "UNKNOWN":
        problems.append(f"sr_status_name({i}) = {printed.get(f'status.{i}')!r}, want UNKNOWN")

for name in SURFACE["placements"]:
    if printed.get(f"placement.{name}") != "OK":
        problems.append(f"placement {name!r}: sr_client_new gives {printed.get(f'placement.{name}')}")

for cls, methods in SURFACE["methods"].items():
    for method, params in methods.items():
        fn = (HANDLES.get(cls) or STATIC[cls]) + method
        if fn not in FUNCS:
            problems.append(f"{cls}.{method}: no {fn} in the header")
            continue
        want = params
        got = [
            p
            for p in FUNCS[fn][0 if cls in STATIC else 1:]
            if not p.endswith("_out") and not p.endswith("_len") and p not in C_ONLY
        ]
        if len(got) != len(want) or any(g not in spellings(w) for g, w in zip(got, want)):
            problems.append(f"{cls}.{method}: {fn} takes {got}, surface {want}")

checked = sum(len(m) for m in SURFACE["methods"].values())
if problems:
    print("\n".join(problems))
    print(f"C surface: {len(problems)} mismatch(es)")
    sys.exit(1)
print(f"C surface ok: {checked} methods, {len(SURFACE['types'])} types, config defaults, "
      f"{len(SURFACE['error_codes'])} codes, {len(SURFACE['placements'])} placements")
