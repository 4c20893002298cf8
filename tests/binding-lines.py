#!/usr/bin/env python3
"""Code lines (non-blank, non-comment) of each binding against the core library.

The core library is core/src without bin/ and testkit.rs. A binding is its glue crate's
src/ plus the hand-written code of its package (Python modules, the npm package's JS, the Go
package's .go and .c files); tests, generated files (C header, index.d.ts), type stubs and
benchmark hooks (bench*.rs/.c/.go, off unless a bench feature or tag asks for them) are left
out. Usage: tests/binding-lines.py [ROOT] [--json]. Issue 11's goal: all bindings <= 1.6x
the core, each <= 0.45x.
"""
import json
import os
import sys
from pathlib import Path

PARTS = {
    "core": ["core/src/**/*.rs"],
    "python": ["bindings/python/src/**/*.rs", "python/stateful_route/*.py"],
    "node": ["bindings/node/src/**/*.rs", "node/*.js", "node/*.mjs"],
    "c": ["bindings/c/src/**/*.rs"],
    "go": ["bindings/go/*.go", "bindings/go/*.c"],
}


def left_out(p: Path) -> bool:
    n = p.name
    return (
        n.endswith("_test.go")
        or n.startswith("bench")
        or n == "testkit.rs"
        or "bin" in p.parts[1:3] and p.parts[0] == "core"
    )


def code_lines(path: Path) -> int:
    hash_comments = path.suffix == ".py"
    n, in_block = 0, False
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if in_block:
            in_block = "*/" not in s
            continue
        if not s:
            continue
        if hash_comments:
            if s.startswith("#"):
                continue
        elif s.startswith("//") or s.startswith("*"):
            continue
        elif s.startswith("/*"):
            in_block = "*/" not in s
            continue
        n += 1
    return n


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = Path(args[0] if args else Path(__file__).resolve().parent.parent)
    counts = {}
    for part, globs in PARTS.items():
        files = sorted({p for g in globs for p in root.glob(g)})
        counts[part] = sum(code_lines(p) for p in files if not left_out(p.relative_to(root)))
    core = counts["core"]
    bindings = sum(v for k, v in counts.items() if k != "core")
    if "--json" in sys.argv:
        print(json.dumps({**counts, "bindings": bindings}))
        return
    print(f"{'part':8} {'lines':>6} {'x core':>7}")
    for part, n in counts.items():
        print(f"{part:8} {n:6} {n / core:7.2f}")
    print(f"{'bindings':8} {bindings:6} {bindings / core:7.2f}")


if __name__ == "__main__":
    main()
