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


def _manifest() -> dict:
    import yaml

    blocks = [b for b in readme_blocks.read() if b.lang == "yaml"]
    assert len(blocks) == 1, [b.line for b in blocks]
    doc = yaml.safe_load(blocks[0].text)
    assert isinstance(doc, dict)
    return doc


def test_readme_statefulset_manifest_has_what_the_library_reads(monkeypatch) -> None:
    """The README's StatefulSet parses as YAML; its env gives from_env what it needs, its grace
    period outlasts the drain, and it has a preStop hook."""
    from stateful_route import ServerInfo

    doc = _manifest()
    assert (doc["apiVersion"], doc["kind"]) == ("apps/v1", "StatefulSet")
    name = doc["metadata"]["name"]
    pod = doc["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    drain = float(env["STATEFUL_ROUTE_DRAIN_SECONDS"]["value"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > drain + float(pre_stop[1])
    # What Kubernetes would set for the pod with ordinal 2 of this StatefulSet.
    for k in ("POD_NAMESPACE", "POD_NAME", "HOSTNAME", "STATEFUL_ROUTE_SERVICE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("POD_NAME", f"{name}-2")
    monkeypatch.setenv("POD_NAMESPACE", "games")
    monkeypatch.setenv("STATEFUL_ROUTE_SERVICE", env["STATEFUL_ROUTE_SERVICE"]["value"])
    info = ServerInfo.from_env()
    assert (info.namespace, info.service_name, info.pod_index) == ("games", "room", 2)
