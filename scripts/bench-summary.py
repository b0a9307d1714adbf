#!/usr/bin/env python3
"""Turns bench.csv into summary.md (a side-by-side table with ratios) and PNG plots; adds the
slow-watcher table (slowwatch.csv), the store-growth and long-history tables and plots
(growth.csv, growth-runs.csv, block-history.txt) and the under-attack table (attack.csv,
attack-conditions.txt) when bench.sh wrote them."""
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
         "Each cell is one of REPEAT runs (default 3) of DUR seconds on a fresh daemon per peer: the run with the median rate, or a run that failed a check if there was one. It shows ops/s (commits/s for vm* modes), p99 latency, retries per commit; for vmshared also Jain's fairness index between the clients (1 = all commit equally) and the fewest–most commits of one client. Ratio = swift / peer rate. `null` (when present) is `bench/peers/nullserver.c`, a server that answers every request at once and stores nothing: the limit the client, the socket and the machine set; swift/null is the share of that limit we reach.", ""]
header = "| mode | N | w/tx | " + " | ".join(peers)
ratio_peers = [p for p in ("cx", "ox", "null") if p in peers]
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
        if mode == "vmshared" and "jain=" in r["check"]:
            fields = dict(part.split("=", 1) for part in r["check"].rstrip(")").split("(", 1)[1].split(";"))
            cell += f", fairness {fields['jain']} ({fields['min']}–{fields['max']} commits/client)"
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


def read_csv(name):
    path = os.path.join(out, name)
    return list(csv.DictReader(open(path))) if os.path.exists(path) else []


def check_field(r, name):
    for part in r["check"].split(";"):
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    return ""


slow = read_csv("slowwatch.csv")
if slow:
    lines += ["", "## Slow watcher", "",
              "4 writers each write new keys under `/bench/w` for DUR_SLOW (default 5 s); one watcher on `/bench/w` reads through a raw",
              "socket at most 1000 events/s while they write, then drains. Baseline: the same writers, no watcher.", "",
              "| peer | writes/s, no watcher | writes/s, slow watcher | ratio | max write latency | events / writes | delivered while writing | lost | stalled writers |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in [q for q in ("swift", "swift-db", "cx", "ox") if any(r["peer"] == q for r in slow)]:
        base = next((r for r in slow if r["peer"] == p and "nowatcher" in r["check"]), None)
        with_w = next((r for r in slow if r["peer"] == p and "events=" in r["check"]), None)
        if not with_w:
            continue
        b = float(base["ops_per_s"]) if base else 0
        w = float(with_w["ops_per_s"])
        stuck = check_field(with_w, "stuck") or "0"
        lines.append(f"| {p} | {b:.0f} | {w:.0f} | {w / b:.2f} | {int(with_w['max_us']) / 1000:.0f} ms | "
                     f"{check_field(with_w, 'events')} / {check_field(with_w, 'writes')} | {check_field(with_w, 'during')} | "
                     f"{check_field(with_w, 'lost')} | {stuck} |" if b else f"| {p} | - | {w:.0f} | - | - | - | - | - | {stuck} |")

growth = read_csv("growth.csv")
runs = read_csv("growth-runs.csv")


def series(p, mode):
    return [(int(r["writes"]), float(r["us_per_write"]), int(r["rss_kb"]), float(r["elapsed_s"]), int(r["domains"]))
            for r in growth if r["peer"] == p and r["mode"] == mode]


def at(points, n):
    """The bucket closest to n writes."""
    return min(points, key=lambda x: abs(x[0] - n)) if points else None


for mode, title, what in (("scale", "Store growth", "writes (domains x 50 nodes)"),
                          ("history", "Long history", "commits (rewrites of 100 keys)")):
    gpeers = [p for p in ("swift", "swift-block", "swift-db", "cx", "ox") if series(p, mode)]
    if not gpeers:
        continue
    lines += ["", f"## {title}", "",
              f"One client, {what}; each point is the mean latency of a bucket of 10,000 writes and the daemon's RSS.",
              "Runs stop after the time limit; `reached` says how far each got.", "",
              "| peer | reached | time | us/write: first | at 25% | at 50% | last | RSS first -> max -> last (MB) |",
              "|---|---|---|---|---|---|---|---|"]
    for p in gpeers:
        pts = series(p, mode)
        last = pts[-1]
        reached = f"{last[0]:,} writes" + (f" ({last[4]:,} domains)" if mode == "scale" else "")
        q1, q2 = at(pts, last[0] // 4), at(pts, last[0] // 2)
        rss = [x[2] for x in pts]
        lines.append(f"| {p} | {reached} | {last[3]:.0f} s | {pts[0][1]:.0f} | {q1[1]:.0f} | {q2[1]:.0f} | {last[1]:.0f} | "
                     f"{rss[0] / 1024:.0f} -> {max(rss) / 1024:.0f} -> {rss[-1] / 1024:.0f} |")
block = os.path.join(out, "block-history.txt")
if os.path.exists(block) and open(block).read().strip():
    lines += ["", "`--block` (64 MiB device) after the history run: " + open(block).read().strip()]
dbpack = read_csv("dbpack.csv")
if dbpack:
    lines += ["", "### `--database` before and after packing (`xsctl gc` while the daemon runs)", "",
              "| phase | commits | files in .git | loose objects | packs | writes/s (1 client) |", "|---|---|---|---|---|---|"]
    for r in dbpack:
        lines.append(f"| {r['phase']} | {int(r['commits']):,} | {int(r['files']):,} | {int(r['loose_objects']):,} | {r['packs']} | {r['writes_per_s']} |")
memory = read_csv("memory.csv")
if memory:
    lines += ["", "### Memory per node (guests' nodes as `xl` writes them)", "",
              "Each peer fresh, then every node `xl create` leaves for a PV guest with a disk, a NIC and a console "
              "(`scripts/xl-guest-nodes.sh`, about 109 per guest) for each guest; the growth of the daemon's RSS, and for ours "
              "of the C heap in use (mallinfo2), divided by the nodes added. Ours keeps its default history window "
              "(the last 4,096 commits in memory, each write one commit); C xenstored and oxenstored keep no history.", "",
              "| peer | guests | nodes added | RSS before -> after (MB) | RSS bytes per node | heap bytes per node | seconds to write |",
              "|---|---|---|---|---|---|---|"]
    for r in memory:
        heap = r["heap_bytes_per_node"] or "-"
        lines.append(f"| {r['peer']} | {int(r['guests']):,} | {int(r['nodes_added']):,} | {int(r['rss_before_kb']) / 1024:.0f} -> "
                     f"{int(r['rss_after_kb']) / 1024:.0f} | {r['rss_bytes_per_node']} | {heap} | {r['write_s']} |")
bad = [r for r in runs if r["errors"] not in ("0", "") or "children_failed" in r["check"]]
for r in bad:
    lines.append(f"- {r['peer']} {r['mode']}: errors={r['errors']} {r['check']}")

attack = read_csv("attack.csv")
if attack:
    conditions = os.path.join(out, "attack-conditions.txt")
    lines += ["", "## Under attack (XSA-206 pattern)", "",
              "dom0 `vmstart` with 8 clients (40 writes, 5 shared reads and the attacked node per transaction) while one guest "
              "rewrites `/local/domain/7/data/attack`, a node it owns that every dom0 transaction reads, as fast as it can (one "
              "request in flight), and the same point without the attacker. The guest is domain 7 on an emulated xenstore ring "
              "(a shared page and two FIFOs standing in for the grant and the event channel): our daemon serves it with "
              "`--ring-dir`, C xenstored and oxenstored through `bench/ringshim.c` in front of the peers shim; the attacker code "
              "is the same for all three. `attacker privilege` is probed before each run: the attacker rewrites a dom0-owned "
              "node, EACCES = unprivileged. Each cell is the run with the median dom0 commit rate of the runs of a point (fresh "
              "daemon each), or a run that failed a check. Differences from the table above: oxenstored runs *without* "
              "`--no-domain-init` here (it polls its event channel only then; dom0's ring is an idle page), and every "
              "transaction reads one more node. Mitigations in play: ours, conflict blame and protection "
              "([docs/quotas.md](../../docs/quotas.md#conflict-based-rate-limiting-xsa-206)); oxenstored, conflict credit "
              "(`conflict-burst-limit` 5.0 from Debian's oxenstored.conf); C xenstored has no conflict-based limit but "
              "limits an unprivileged domain's write rate (its built-in limiter, 200 writes/s with a burst).", ""]
    if os.path.exists(conditions):
        c = dict(part.split("=", 1) for part in open(conditions).read().split())
        lines += [f"Machine: {c.get('cpus', '?')} CPUs, load average (1/5/15 min) {c.get('load_before', '?')} before the section and "
                  f"{c.get('load_after', '?')} after it; {c.get('duration_s', '?')} s per run, {c.get('runs_per_point', '?')} runs per point. "
                  "A load above the CPU count means the daemons and clients ran under contention.", ""]
    lines += ["| peer | attacker | attacker privilege | dom0 commits/s: no attacker | under attack | ratio | retries/commit: no attacker -> attack "
              "| worst transaction's retries | commit p99 / max under attack | attacker writes/s | gave up |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in [q for q in ("swift", "cx", "ox") if any(r["peer"] == q for r in attack)] + \
             sorted({r["peer"] for r in attack} - {"swift", "cx", "ox"}):
        base = next((r for r in attack if r["peer"] == p and r["attacker"] == "none"), None)
        for a in (r for r in attack if r["peer"] == p and r["attacker"] != "none"):
            b = float(base["commits_per_s"]) if base else 0
            c = float(a["commits_per_s"])
            base_retries = f"{float(base['retries_per_commit']):.1f}" if base else "-"
            note = "" if a["check"].split(";")[0] == "ok" and "attacker_err" not in a["check"] else f" ({a['check']})"
            lines.append(f"| {p} | {a['attacker']} | {a['attacker_privilege']} | {b:.0f} | {c:.0f} | "
                         f"{c / b if b else 0:.2f} | {base_retries} -> {float(a['retries_per_commit']):.1f} | "
                         f"{check_field(a, 'most_retries') or '-'} | {int(a['p99_us']) / 1000:.0f} ms / {int(a['max_us']) / 1000:.0f} ms | "
                         f"{float(a['attacker_writes_per_s']):.0f} | {a['gaveup']}{note} |")

open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))


def stamp(path):
    """The run's date, commit and machine from a key=value file bench.sh wrote, as one sentence."""
    if not os.path.exists(path):
        return "not recorded (this run predates the stamp)"
    c = {k: v.replace("_", " ") for k, v in (part.split("=", 1) for part in open(path).read().split() if "=" in part)}
    return (f"{c.get('date', '?')}, commit {c.get('commit', '?')}, {c.get('cpus', '?')} CPUs "
            f"({c.get('cpu', '?')}), {c.get('mem_gib', '?')} GiB, load {c.get('load_before', '?')} at the start")


docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks.md")
generated = ["# Benchmarks", "",
             "Generated by `scripts/bench-summary.py` from `bench/results` at the end of `make bench`: do not edit.",
             "Notes on these and earlier runs, written by hand: [benchmark-notes.md](benchmark-notes.md). Same-run",
             "comparisons of two revisions of our daemon (`make bench-compare`): [compare.md](../bench/results/compare.md).", "",
             f"- Main tables: {stamp(os.path.join(out, 'run-info.txt'))}.",
             f"- Under attack: {stamp(os.path.join(out, 'attack-conditions.txt'))}.",
             f"- Memory per node: {stamp(os.path.join(out, 'memory-conditions.txt'))}.", ""]
import re


def relink(target):
    """A link of summary.md (relative to bench/results) as seen from docs/."""
    if target.startswith(("http", "#")):
        return target
    if target.startswith("../../docs/"):
        return target[len("../../docs/"):]
    return "../bench/results/" + target


body = [re.sub(r"\]\(([^)]+)\)", lambda m: "](" + relink(m.group(1)) + ")", l) for l in lines]
body = ["#" + l if l.startswith("# ") else l for l in body]  # one title per page
# The profile of `make bench-profile` (bench/profile-summary.py): its runs and the table by category.
profile = os.path.join(out, "profile.md")
if os.path.exists(profile):
    text = open(profile).read().split("\n")
    runs = [l for l in text if l.startswith("- `")]
    def section(prefix):
        """The lines of profile.md's section whose title starts with `prefix`, title made a level lower."""
        start = next(i for i, l in enumerate(text) if l.startswith("## " + prefix))
        end = next((i for i, l in enumerate(text) if i > start and l.startswith("## ")), len(text))
        return ["#" + text[start]] + text[start + 1:end]
    body += ["", "## Profile under vmstart (`make bench-profile`)", "",
             "perf samples and callgrind instruction counts of the daemon under `vmstart`, a revision before and "
             "after a change; top symbols and how it was measured: [profile.md](../bench/results/profile.md).",
             ""] + runs + [""] + section("Where") + section("Instructions")
open(docs, "w").write("\n".join(generated + body) + "\n")

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
for mode, xlabel, fname in (("scale", "nodes written", "growth.png"), ("history", "commits", "history.png")):
    gpeers = [p for p in ("swift", "swift-block", "swift-db", "cx", "ox") if series(p, mode)]
    if not gpeers:
        continue
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for p in gpeers:
        pts = series(p, mode)
        left.plot([x[0] for x in pts], [x[1] for x in pts], label=p)
        right.plot([x[0] for x in pts], [x[2] / 1024 for x in pts], label=p)
    left.set_xlabel(xlabel); right.set_xlabel(xlabel)
    left.set_ylabel("us per write (mean of 10,000)"); right.set_ylabel("daemon RSS (MB)")
    left.set_yscale("log")
    left.set_title(f"{mode}: cost per write"); right.set_title(f"{mode}: memory")
    left.legend(); right.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, fname), dpi=90)
print("bench-summary: plots written")
