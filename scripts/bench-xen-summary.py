#!/usr/bin/env python3
"""bench-xen-summary.py: the summary of `make bench-xen` (bench/results/xen.csv) as a Markdown table: medians per side, ratios, spread, CPU time per request."""
import csv
import os
import statistics
import subprocess
import sys

path, commit, started, boots, variant = sys.argv[1:6]
image = sys.argv[6] if len(sys.argv) > 6 else ""

rows = list(csv.DictReader(open(path)))
workloads = ["write", "read", "directory", "vmstart-1", "vmstart-8"]
labels = {
    "write": "write, 1 client (ops/s)",
    "read": "read, 1 client (ops/s)",
    "directory": "directory of 100, 1 client (ops/s)",
    "vmstart-1": "vmstart N=1, 40 writes (commits/s)",
    "vmstart-8": "vmstart N=8, 40 writes (commits/s)",
}


def values(side, workload, column):
    out = []
    for row in rows:
        if row["side"] == side and row["workload"] == workload:
            try:
                out.append(float(row[column]))
            except (TypeError, ValueError):
                pass
    return out


def rate_column(workload):
    return "commits_per_s" if workload.startswith("vmstart") else "ops_per_s"


def median(xs):
    return statistics.median(xs) if xs else None


def cpu_per_request_ms(side, workload):
    """The Xenstore's CPU time per request (per commit for vmstart), median over boots, in ms."""
    per = []
    count_column = "commits" if workload.startswith("vmstart") else "ops"
    for row in rows:
        if row["side"] == side and row["workload"] == workload:
            try:
                cpu, count = float(row["xenstore_cpu_s"]), float(row[count_column])
            except (TypeError, ValueError):
                continue
            if count > 0:
                per.append(1000 * cpu / count)
    return median(per)


def fmt(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


try:
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
except (OSError, IndexError):
    qemu = "QEMU (version unknown)"

print("# Stub domain against C xenstored under Xen (`make bench-xen`)")
print()
print(f"Run {started}, commit {commit}: {boots} boot{'' if boots == '1' else 's'} per side, alternating; the {variant.upper()} stub image "
      f"(16 MiB) and Debian's C xenstored 4.17 in dom0, each as the host's only Xenstore; xsbench in dom0 over "
      f"/dev/xen/xenbus; Xen 4.17 + dom0 (one vCPU) under {qemu} (TCG, 2 emulated CPUs) on the 2-core machine.")
pin = os.environ.get("PIN_PLACEMENT", "")
if pin:
    print(f"vCPU placement: {pin}.")
print("Medians over the boots; the range in brackets. Ratio > 1: the stub is faster. CPU per request: the stub "
      "domain's vCPU time (`xl vcpu-list`, 0.1 s steps) or C xenstored's user + system time, divided by the "
      "requests (commits for vmstart) of the run.")
print()
print("| workload | stub | C xenstored | stub/cx | p99 stub / cx (ms) | EAGAIN per commit stub / cx | CPU per request stub / cx (ms) |")
print("|---|---|---|---|---|---|---|")
for workload in workloads:
    column = rate_column(workload)
    stub, cx = values("stub", workload, column), values("cxen", workload, column)
    ms, mc = median(stub), median(cx)
    ratio = f"{ms / mc:.2f}" if ms and mc else "–"
    spread = lambda xs: f" [{min(xs):,.0f}–{max(xs):,.0f}]" if len(xs) > 1 else ""
    p99s, p99c = median(values("stub", workload, "p99_us")), median(values("cxen", workload, "p99_us"))
    retries = "–"
    if workload.startswith("vmstart"):
        retries = f"{fmt(median(values('stub', workload, 'retries_per_commit')), 2)} / {fmt(median(values('cxen', workload, 'retries_per_commit')), 2)}"
    p99 = f"{fmt(p99s / 1000 if p99s else None, 1)} / {fmt(p99c / 1000 if p99c else None, 1)}"
    cpu = f"{fmt(cpu_per_request_ms('stub', workload), 2)} / {fmt(cpu_per_request_ms('cxen', workload), 2)}"
    print(f"| {labels[workload]} | {fmt(ms)}{spread(stub)} | {fmt(mc)}{spread(cx)} | {ratio} | {p99} | {retries} | {cpu} |")
print()
if image and not image.startswith("build/xenstore-stubdom-"):
    print(f"The stub image: {image} (not this commit's).")
    print()
print(f"Raw rows: {path} (xsbench's columns, bench/xsbench.c, plus boot, side, workload and xenstore_cpu_s).")

# The stub's own account (CONTROL profile, on for a second, shorter run of each workload):
# microseconds per request (per commit for vmstart) in each phase of its event loop, median over
# the boots, less the profile's own clock readings (each phase switch reads the clock once).
profile_path = os.environ.get("PROFILE_CSV", "")
profile_rows = list(csv.DictReader(open(profile_path))) if profile_path and os.path.exists(profile_path) else []
if profile_rows:
    runs = {}
    for row in profile_rows:
        try:
            runs.setdefault((row["boot"], row["workload"]), {})[row["counter"]] = float(row["value"])
        except ValueError:
            pass
    phases = [row["counter"][:-3] for row in profile_rows
              if row["counter"].endswith("-us") and row["counter"] != "elapsed-us" and not row["counter"].startswith("longest-")]
    phases = list(dict.fromkeys(phases))

    def per_request(workload, value_of):
        per = []
        for (boot, name), run in runs.items():
            count = run.get("commits" if workload.startswith("vmstart") else "ops")
            if name != workload or not count:
                continue
            value = value_of(run)
            if value is not None:
                per.append(value / count)
        return median(per)

    def phase_us(phase):
        def value_of(run):
            if f"{phase}-us" not in run:
                return None
            clock_us = run.get("clock-read-ns", 0) / 1000
            return max(0.0, run[f"{phase}-us"] - run.get(f"{phase}-entries", 0) * clock_us)
        return value_of

    def busy_us(run):
        return sum(phase_us(p)(run) or 0 for p in phases if p != "idle")

    print()
    print("## Where the stub's time goes")
    print()
    print("The stub's own clock (CONTROL `profile`, `Sources/XenstoredImage/RoundProfile.swift`), on for a second run of "
          f"each workload ({profile_path}): microseconds per request (per commit for vmstart) in each phase of its "
          "event loop, median over the boots, less the profile's own clock readings (one per phase switch, "
          "`clock-read-ns` each, measured in the same run). Wall-clock time of the domain: it includes time its vCPU "
          "waited for a physical one. `busy` is all but `idle`.")
    print()
    print("| phase | " + " | ".join(workloads) + " |")
    print("|---|" + "---|" * len(workloads))
    digits = lambda x: 0 if x is not None and x >= 100 else 1
    for phase in phases:
        cells = [per_request(w, phase_us(phase)) for w in workloads]
        print(f"| {phase} | " + " | ".join(fmt(x, digits(x)) for x in cells) + " |")
    cells = [per_request(w, busy_us) for w in workloads]
    print("| busy | " + " | ".join(fmt(x, digits(x)) for x in cells) + " |")
    for counter in ["rounds", "store-batches", "store-batch-bytes", "store-squashes", "state-encodes"]:
        cells = [per_request(w, lambda run, c=counter: run.get(c)) for w in workloads]
        print(f"| {counter} per request | " + " | ".join(fmt(x, 2) for x in cells) + " |")
    cells = [median([run["state-bytes"] / run["state-encodes"] for (boot, name), run in runs.items()
                     if name == w and run.get("state-encodes")]) for w in workloads]
    print("| bytes per connection state encoded | " + " | ".join(fmt(x) for x in cells) + " |")
    for counter, label in [("longest-busy-us", "longest busy stretch (µs)"), ("longest-store-us", "longest history store in one stretch (µs)")]:
        cells = [median([run[counter] for (boot, name), run in runs.items() if name == w and counter in run]) for w in workloads]
        print(f"| {label} | " + " | ".join(fmt(x) for x in cells) + " |")
    clock = median([run["clock-read-ns"] for run in runs.values() if "clock-read-ns" in run])
    print()
    print(f"One clock reading cost {fmt(clock / 1000 if clock else None, 1)} µs (median; the figures above are net of "
          "the profile's own readings). Under QEMU, Xen finds the TSC neither constant nor reliable and emulates RDTSC: "
          "for the PVH stub every reading is a VM exit.")
