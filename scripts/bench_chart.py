#!/usr/bin/env python3
"""Draws the relay's round-trip latency against offered load (docs/bench-latency.png).

Input: a JSON file {"kvs": [relay results...], "baseline": [relay results...], "kvs_max": N}
where each relay result is the one-line JSON printed by `kvs-bench relay --rate R` (open loop).
X axis: offered load in relayed messages/s (two per round trip); Y axis: RTT p50 and p99 (ms,
log scale). The 5 ms p99 target of issue 7 and half of kvs-signaling's closed-loop maximum are
drawn as guides.

Usage: bench_chart.py INPUT.json OUTPUT.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series(results, key):
    pts = []
    for r in results:
        x = r.get("offered_msgs_per_s")
        y = (r.get("rtt") or {}).get(key)
        if x is not None and y is not None:
            pts.append((x, y))
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        data = json.load(f)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {
        "kvs": ("kvs-signaling", "tab:blue"),
        "baseline": ("minimal relay (baseline)", "tab:gray"),
    }
    for name, (label, color) in styles.items():
        results = data.get(name) or []
        for key, ls, marker in (("p50_ms", "-", "o"), ("p99_ms", "--", "s")):
            xs, ys = series(results, key)
            if xs:
                ax.plot(xs, ys, ls, marker=marker, color=color,
                        label=f"{label} RTT {key.split('_')[0]}")
    ax.axhline(5.0, color="tab:red", lw=0.8, ls=":", label="target: p99 < 5 ms at half max")
    kvs_max = data.get("kvs_max")
    if kvs_max:
        ax.axvline(kvs_max / 2, color="tab:green", lw=0.8, ls=":",
                   label="half of kvs-signaling's closed-loop max")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (relayed messages/s, both directions)")
    ax.set_ylabel("round trip viewer → master → viewer (ms)")
    ax.set_title("Relay latency against offered load (open loop)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
