#!/usr/bin/env python3
"""Summarises `make bench-profile`: perf's flat profiles of two daemons under vmstart, by category, side by side.

Usage: profile-summary.py OUT_DIR RAW_DIR LABEL_BASE LABEL_HEAD
Reads RAW_DIR/profile-<label>.txt (`perf report --no-children --sort symbol --stdio -g none`,
symbols demangled), RAW_DIR/profile-<label>-callgrind.txt (`callgrind_annotate --inclusive=yes`,
demangled) and OUT_DIR/profile-runs.csv; writes OUT_DIR/profile.csv (both tables) and
OUT_DIR/profile.md. The raw reports stay out of the repository (RAW_DIR is under build/).
"""
import csv
import os
import re
import sys

# (category, test on the demangled symbol); the first match wins; kernel symbols are counted apart.
CATEGORIES = [
    ("reference counting", lambda s: re.search(r"swift_(retain|release|bridgeObject|unknownObject)|RefCount|_swift_release_dealloc|isUniquelyReferenced", s)),
    ("allocation and freeing", lambda s: re.search(r"malloc|_int_free|\bfree\b|cfree|unlink_chunk|swift_(allocObject|slowAlloc|deallocObject|deallocClassInstance|slowDealloc|deallocUninitialized)|ContiguousArrayStorage.*deinit|__ContiguousArrayStorageBase|swift_arrayDestroy|swift_arrayInitWith|tls_get_addr", s)),
    ("hashing and dictionary lookups", lambda s: re.search(r"Hasher|_RawDictionaryStorage|_NativeDictionary|_NativeSet|hashValue|_rawHashValue", s)),
    ("exclusivity checks", lambda s: re.search(r"swift_beginAccess|swift_endAccess|AccessSet", s)),
    ("transaction log", lambda s: "TransactionLog" in s),
    ("replay and merge at commit", lambda s: re.search(r"Server\.(replay|commit|blameConflict)|ThreeWayMerge|Tree\.equal", s)),
    ("tree updates and lookups (path copies, child lists)", lambda s: re.search(r"ChildList|Tree\.|\bNode\b|CompactBytes|\bChild\b|Permissions|TreeValidation|TreeDiff", s)),
    ("history (commits, window)", lambda s: re.search(r"History\.|\bCommit\b", s)),
    ("request handling (paths, operations, watches, quotas)", lambda s: re.search(r"Server\.|NodeOperations|PathRules|NodePath|DomainTable|Watch|OutputQueue|Quota|Connection", s)),
    ("framing and socket shell", lambda s: re.search(r"FrameDecoder|MessageHeader|SocketDaemon|Payload|^read$|libc_(read|write)", s)),
]


def parse(path):
    """(percent, kernel?, symbol) of every line of a flat perf report."""
    rows = []
    with open(path, errors="replace") as handle:
        for line in handle:
            match = re.match(r"\s*([0-9.]+)%\s+\[(k|\.)\]\s+(.*?)\s*(?:-\s+-\s*)?$", line)
            if match:
                rows.append((float(match.group(1)), match.group(2) == "k", match.group(3).strip()))
    return rows


# Functions of ours whose inclusive share of instructions (callgrind, callees included) is shown.
INCLUSIVE = [
    ("a request inside a transaction, first run", "Server.runInTransaction("),
    ("TRANSACTION_END", "Server.commit(_:by:)"),
    ("  replaying the transaction on the new head", "Server.replay(_:onto:for:)"),
    ("  checking that nothing the log read changed", "Server.logUnaffected("),
    ("WRITE (first run and replay)", "NodeOperations.write("),
    ("  path copy (Tree.replacing)", "Tree.replacing("),
    ("    child list copy (ChildList.setting)", "ChildList.setting("),
    ("transaction log: path lookups (mark slots)", "TransactionLog.markSlots("),
    ("transaction log: placement", "TransactionLog.placement("),
    ("transaction log: cost", "TransactionLog.cost("),
    ("transaction log: record", "TransactionLog.record("),
    ("new commit (History.makeCommit)", "History.makeCommit("),
    ("path parsing and checks (PathRules.nodePath)", "PathRules.nodePath("),
    ("framing (FrameDecoder.feed)", "FrameDecoder.feed"),
    ("swift_release (freeing included)", "swift_release ["),
    ("swift_retain", "swift_retain ["),
]


def inclusive(path):
    """The largest inclusive percent callgrind_annotate gives each function of INCLUSIVE."""
    shares = {}
    if not os.path.exists(path):
        return shares
    with open(path, errors="replace") as handle:
        for line in handle:
            match = re.match(r"\s*[\d,]+ \(\s*([\d.]+)%\)\s+(.*)$", line)
            if not match or "'2" in line:
                continue
            for _, needle in INCLUSIVE:
                if needle in match.group(2):
                    shares[needle] = max(shares.get(needle, 0.0), float(match.group(1)))
    return shares


def categorise(rows):
    totals = {}
    for percent, kernel, symbol in rows:
        name = "kernel (sockets, scheduling, wakeups)" if kernel else next(
            (category for category, test in CATEGORIES if test(symbol)), "other user space")
        totals[name] = totals.get(name, 0.0) + percent
    return totals


def main():
    out, raw, base, head = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    profiles = {label: parse(os.path.join(raw, f"profile-{label}.txt")) for label in (base, head)}
    shares = {label: inclusive(os.path.join(raw, f"profile-{label}-callgrind.txt")) for label in (base, head)}
    totals = {label: categorise(rows) for label, rows in profiles.items()}
    runs = {}
    with open(os.path.join(out, "profile-runs.csv")) as handle:
        for row in csv.DictReader(handle):
            runs[row["label"]] = row
    names = sorted({name for t in totals.values() for name in t}, key=lambda n: -totals[base].get(n, 0.0))
    with open(os.path.join(out, "profile.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "table", "row", "percent"])
        for label in (base, head):
            for name in names:
                writer.writerow([label, "perf samples by category (self)", name, f"{totals[label].get(name, 0.0):.2f}"])
            for title, needle in INCLUSIVE:
                if needle in shares[label]:
                    writer.writerow([label, "callgrind instructions with callees", title.strip(),
                                     f"{shares[label][needle]:.2f}"])
    lines = ["# Profile of the daemon under vmstart (`make bench-profile`)", "",
             "Generated by `bench/profile-summary.py`: do not edit. Each side: a fresh release daemon, "
             "`xsbench -m vmstart` (40 writes and 5 shared reads per transaction) with the clients below; "
             "`perf record -e cpu-clock -g` samples the daemon while it runs (the machine's PMU counters are "
             "not available here, so cycles and instructions are not sampled); then the same load on a "
             "fresh daemon under `valgrind --tool=callgrind`, whose instruction count per commit is "
             "repeatable where rates are not.", ""]
    for label in (base, head):
        row = runs[label]
        lines.append(f"- `{label}`: {row['commit']}, {row['clients']} clients, {row['commits_per_s']} commits/s "
                     f"while sampled ({row['samples']} samples), {row['instructions_per_commit']} instructions per "
                     f"commit under callgrind ({row['callgrind_commits']} commits).")
    lines += ["", "## Where the daemon's time goes (percent of its samples)", "",
              f"| category | {base} | {head} |", "|---|---|---|"]
    for name in names:
        lines.append(f"| {name} | {totals[base].get(name, 0.0):.1f} | {totals[head].get(name, 0.0):.1f} |")
    lines += ["", "## Instructions by function, callees included (percent of the daemon's instructions, callgrind)", "",
              "Runtime functions (reference counting, allocation) are counted where they are called, which "
              "the flat profile above cannot show.", "",
              f"| function | {base} | {head} |", "|---|---|---|"]
    for title, needle in INCLUSIVE:
        cells = [f"{shares[label][needle]:.1f}" if needle in shares[label] else "-" for label in (base, head)]
        lines.append(f"| {title.replace('  ', '&nbsp;&nbsp;')} | {cells[0]} | {cells[1]} |")
    for label in (base, head):
        lines += ["", f"## Top symbols, {label}", "", "| self % | symbol |", "|---|---|"]
        for percent, kernel, symbol in profiles[label][:20]:
            shown = symbol if len(symbol) <= 110 else symbol[:107] + "..."
            lines.append(f"| {percent:.2f} | {'[kernel] ' if kernel else ''}`{shown}` |")
    with open(os.path.join(out, "profile.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
