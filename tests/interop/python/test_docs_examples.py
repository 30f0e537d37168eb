"""The pytest example of docs/testing-with-kvs-signaling.md, run as it is written (issue 14 "For
test suites") in a pytest run of its own: only the binary's path differs from the page. The Jest
example is run by tests/interop/node/docs-example.test.mjs."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from kvs_harness import binary

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "testing-with-kvs-signaling.md"


def block(lang: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, f"expected one ```{lang} block in {DOC}, found {len(blocks)}"
    return blocks[0]


def test_the_pytest_example_passes(tmp_path):
    code = block("python")
    assert '["kvs-signaling", "serve"' in code
    (tmp_path / "test_example.py").write_text(code.replace('["kvs-signaling", "serve"', f'["{binary()}", "serve"'))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout, run.stdout
