#!/usr/bin/env python3
"""The README's code blocks as tests (stdlib only).

Every fenced block of README.md whose language is one of LANGS is *runnable*: a complete
program that runs on the embedded memory store. It must be followed by its output, as a
```text block introduced by a line `Prints:` (only blank lines around it):

    ```python
    print("user123 ->", 0)
    ```

    Prints:

    ```text
    user123 -> 0
    ```

A block that cannot run alone (a fragment using names defined elsewhere) says so in its fence's
info string, `python fragment`, `js fragment`, `go fragment`, `rust fragment`, `c fragment`;
it is skipped. Blocks of other languages (`sh`, `text`, none) are not tests.

Each binding's suite runs its own blocks and compares stdout with the expected output exactly:
python/tests/test_readme.py (the venv's python), node/test/readme.test.js (node; the blocks
`require('stateful-route')`, which is the npm package's own name, so they run unchanged from a
directory where the package is installed: the test writes them under its own directory in
node/test.sh's install directory), bindings/go/readme_test.go (`go run` in a temporary module
that `replace`s the package by bindings/go), tests/readme-check.sh (Rust and C).

CLI:
    readme_blocks.py list                   every fenced block: line, language, kind, output
    readme_blocks.py LANG OUTDIR            writes OUTDIR/blockN.EXT and OUTDIR/blockN.expected
                                            for each runnable LANG block (N: its position among
                                            all fenced blocks, from 1); exits 1 if one has no
                                            output block, or if there is none
    readme_blocks.py check-rust [EXAMPLE]   exits 1 unless the README's one runnable Rust block
                                            is identical to EXAMPLE (core/examples/readme.rs),
                                            which tests/readme-check.sh runs
Option --readme PATH (before the command) reads another file than the repository's README.md.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUST_EXAMPLE = ROOT / "core" / "examples" / "readme.rs"

# Runnable languages and the extension of their files.
LANGS = {"python": "py", "js": "js", "go": "go", "rust": "rs", "c": "c"}
FRAGMENT = "fragment"
OUTPUT_LANG = "text"
OUTPUT_INTRO = "Prints:"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass
class Block:
    number: int  # position among all fenced blocks, from 1
    line: int  # line of the opening fence, from 1
    lang: str  # first word of the info string ("" if none)
    info: str  # the whole info string
    text: str  # the content, de-indented by the fence's indent, ending with "\n" unless empty
    expected: str | None = None  # the output block that follows it, if any

    @property
    def fragment(self) -> bool:
        return FRAGMENT in self.info.split()[1:]

    @property
    def runnable(self) -> bool:
        return self.lang in LANGS and not self.fragment

    @property
    def ext(self) -> str:
        return LANGS[self.lang]


def parse(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, each with the output block that follows it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    gaps: list[list[str]] = []  # the lines between the previous block and this one
    gap: list[str] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            gap.append(lines[i])
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        closing = re.compile(rf"^ {{0,{indent + 3}}}{re.escape(fence)}{fence[0]}* *$")
        body: list[str] = []
        start = i + 1
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            body.append(
                lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i]
            )
            i += 1
        i += 1  # the closing fence (or the end of the text)
        content = "".join(line + "\n" for line in body)
        lang = info.split()[0] if info else ""
        blocks.append(Block(len(blocks) + 1, start, lang, info, content))
        gaps.append(gap)
        gap = []
    for prev, block, between in zip(blocks, blocks[1:], gaps[1:]):
        words = [line.strip() for line in between if line.strip()]
        if (
            block.lang == OUTPUT_LANG
            and words == [OUTPUT_INTRO]
            and prev.lang != OUTPUT_LANG
        ):
            prev.expected = block.text
    return blocks


def read(path: Path = README) -> list[Block]:
    return parse(path.read_text(encoding="utf-8"))


def runnable(blocks: list[Block], lang: str) -> list[Block]:
    return [b for b in blocks if b.lang == lang and b.runnable]


def _list(blocks: list[Block]) -> int:
    for b in blocks:
        kind = "runnable" if b.runnable else FRAGMENT if b.fragment else "-"
        out = "output" if b.expected is not None else ""
        print(
            f"block{b.number}\tline {b.line}\t{b.lang or '(none)'}\t{kind}\t{out}".rstrip()
        )
    return 0


def _write(blocks: list[Block], lang: str, outdir: Path) -> int:
    if lang not in LANGS:
        print(f"unknown language {lang!r}; one of {', '.join(LANGS)}", file=sys.stderr)
        return 2
    chosen = runnable(blocks, lang)
    if not chosen:
        print(f"README has no runnable {lang} block", file=sys.stderr)
        return 1
    missing = [b for b in chosen if b.expected is None]
    for b in missing:
        print(
            f"README line {b.line}: runnable {lang} block without a following "
            f"'{OUTPUT_INTRO}' + ```{OUTPUT_LANG} block (mark it `{lang} {FRAGMENT}` if it "
            "cannot run alone)",
            file=sys.stderr,
        )
    if missing:
        return 1
    outdir.mkdir(parents=True, exist_ok=True)
    for b in chosen:
        (outdir / f"block{b.number}.{b.ext}").write_text(b.text, encoding="utf-8")
        (outdir / f"block{b.number}.expected").write_text(
            b.expected or "", encoding="utf-8"
        )
        print(outdir / f"block{b.number}.{b.ext}")
    return 0


def _check_rust(blocks: list[Block], example: Path) -> int:
    chosen = runnable(blocks, "rust")
    if len(chosen) != 1:
        lines = ", ".join(str(b.line) for b in chosen) or "none"
        print(
            f"want exactly one runnable rust block in README, got: {lines}",
            file=sys.stderr,
        )
        return 1
    want = example.read_text(encoding="utf-8")
    if chosen[0].text == want:
        return 0
    sys.stderr.writelines(
        difflib.unified_diff(
            want.splitlines(keepends=True),
            chosen[0].text.splitlines(keepends=True),
            str(example),
            f"README.md line {chosen[0].line}",
        )
    )
    print(f"README's Rust block differs from {example}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    readme = README
    if argv[:1] == ["--readme"] and len(argv) > 1:
        readme, argv = Path(argv[1]), argv[2:]
    blocks = read(readme)
    if argv == ["list"]:
        return _list(blocks)
    if argv[:1] == ["check-rust"] and len(argv) <= 2:
        return _check_rust(blocks, Path(argv[1]) if len(argv) == 2 else RUST_EXAMPLE)
    if len(argv) == 2:
        return _write(blocks, argv[0], Path(argv[1]))
    print(__doc__.split("CLI:", 1)[1].rstrip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
