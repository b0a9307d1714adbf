#!/usr/bin/env python3
"""Turns bench.csv into summary.md (a side-by-side table with ratios) and PNG plots."""
import csv
import os
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
out = sys.argv[2]
peers = []
for r in rows:
    if r["peer"] not in peers:
        peers.append(r["peer"])


def key(r):
    return (r["mode"], int(r["clients"]), r["writes_per_tx"])


def rate(r):
    return float(r["commits_per_s"]) if r["mode"].startswith("vm") else float(r["ops_per_s"])


table = {}
order = []
for r in rows:
    k = key(r)
    if k not in order:
        order.append(k)
    table[(k, r["peer"])] = r

lines = ["# Benchmark: this daemon vs C xenstored (cx) and oxenstored (ox), one run", "",
         "Each cell: ops/s (commits/s for vm* modes), p99 latency, retries per commit. Ratio = swift / peer rate.", ""]
header = "| mode | N | w/tx | " + " | ".join(peers)
ratio_peers = [p for p in ("cx", "ox") if p in peers]
if "swift" in peers:
    header += "".join(f" | swift/{p}" for p in ratio_peers)
lines += [header + " |", "|" + "---|" * (3 + len(peers) + (len(ratio_peers) if "swift" in peers else 0))]
for k in order:
    mode, n, w = k
    cells = []
    for p in peers:
        r = table.get((k, p))
        if not r:
            cells.append("-")
            continue
        cell = f"{rate(r):.0f}/s, p99 {int(r['p99_us']) / 1000:.1f} ms"
        if mode.startswith("vm"):
            cell += f", {float(r['retries_per_commit']):.1f} retry/c"
        if r["check"] != "ok" and not r["check"].startswith("ok("):
            cell += f", {r['check']}"
        cells.append(cell)
    line = f"| {mode} | {n} | {w if mode.startswith('vm') else ''} | " + " | ".join(cells)
    if "swift" in peers:
        for p in ratio_peers:
            a, b = table.get((k, "swift")), table.get((k, p))
            line += f" | {rate(a) / rate(b):.2f}" if a and b and rate(b) > 0 else " | -"
    lines.append(line + " |")
rss = {r["peer"]: r.get("rss_kb", "") for r in rows}
lines += ["", "RSS after the last point (kB): " + ", ".join(f"{p} {rss[p]}" for p in peers)]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("bench-summary: matplotlib not available, no plots (pip install matplotlib)")
    sys.exit(0)
for mode, ylabel in (("vmstart", "commits/s"), ("vmshared", "commits/s")):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for p in peers:
        pts = sorted((int(r["clients"]), rate(r), float(r["retries_per_commit"]))
                     for r in rows if r["peer"] == p and r["mode"] == mode and r["writes_per_tx"] == "40")
        if pts:
            left.plot([x for x, _, _ in pts], [y for _, y, _ in pts], marker="o", label=p)
            right.plot([x for x, _, _ in pts], [z for _, _, z in pts], marker="o", label=p)
    left.set_xscale("log", base=2); right.set_xscale("log", base=2)
    left.set_xlabel("parallel transactions"); right.set_xlabel("parallel transactions")
    left.set_ylabel(ylabel); right.set_ylabel("EAGAIN retries per commit")
    left.set_title(f"{mode} (40 writes/tx)"); right.set_title("retries")
    left.legend(); right.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{mode}.png"), dpi=90)
print("bench-summary: plots written")
