"""pytest entry for crash_test.py: kill -9 mid-load loses no acknowledged write."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_test import run  # noqa: E402


def test_kill_9_loses_no_acknowledged_write(tmp_path):
    t0 = time.monotonic()
    out = run(tmp_path, rounds=3, seconds=2.5, workers=6)
    assert out["creates"] >= 30 and out["updates"] >= 30, out
    assert time.monotonic() - t0 < 60, "the crash test must stay under a minute"
