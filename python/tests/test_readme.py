"""The README's Python examples run as printed: each runnable ```python block (on the memory
store) prints exactly the ```text block that follows it (tests/readme_blocks.py extracts them)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("readme_blocks", ROOT / "tests" / "readme_blocks.py")
assert _spec is not None and _spec.loader is not None
readme_blocks = importlib.util.module_from_spec(_spec)
sys.modules["readme_blocks"] = readme_blocks  # dataclasses look their module up there
_spec.loader.exec_module(readme_blocks)

BLOCKS = readme_blocks.runnable(readme_blocks.read(), "python")


def test_readme_has_python_examples() -> None:
    # Counted independently of the extractor: fences that open a ```python block, not fragments.
    text = readme_blocks.README.read_text(encoding="utf-8")
    fences = re.findall(r"^ *(?:`{3,}|~{3,})python[ \t]*$", text, re.MULTILINE)
    assert fences, "README.md has no runnable ```python block"
    assert len(BLOCKS) == len(fences), [b.line for b in BLOCKS]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_python_block_prints_its_output(block, tmp_path: Path) -> None:
    assert block.expected is not None, (
        f"README.md line {block.line}: no 'Prints:' + ```text block after the example "
        "(mark it ```python fragment if it cannot run alone)"
    )
    script = tmp_path / f"block{block.number}.py"
    script.write_text(block.text, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, (
        f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    )
    assert run.stdout == block.expected
