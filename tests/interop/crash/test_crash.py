"""pytest entry for crash_test.py: 20 kill -9 at random moments under 4 clients that create,
update, tag, untag and delete; after each, the SQLite file passes PRAGMA integrity_check and
every acknowledged change is there, the one in flight all or nothing. Bounded by counts (kills,
and each wait bounded only against a hang), not by the machine's speed."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_test import run  # noqa: E402


def test_kill_9_loses_no_acknowledged_change(tmp_path):
    out = run(tmp_path, rounds=20, clients=4, seed=1)
    # The kills came mid-load: every kind of change was acknowledged, and changes were in
    # flight at the kills (both outcomes of all-or-nothing are then checked, not just one).
    for kind in ("create", "update", "tag", "untag", "delete"):
        assert out[kind] >= 10, out
    assert sum(out["in_flight"].values()) >= 20, out
