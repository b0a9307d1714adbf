#!/usr/bin/env bash
# make bench-compare BASE=REV: the same xsbench points against this tree's daemon and REV's, alternating in one run, to show a change costs nothing beyond noise.
#   BASE=REV (default HEAD~1), DUR=seconds per point (2), ROUNDS=alternations (5), POINTS (below).
# Writes bench/results/compare.csv (every run) and bench/results/compare.md (medians, head/base).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${BASE:-HEAD~1}
DUR=${DUR:-2}
ROUNDS=${ROUNDS:-5}
POINTS=${POINTS:-"write:1 write:4 read:1 dir:1 vmstart:1 vmstart:8 vmstart:32 vmshared:8"}
WORK=$ROOT/build/bench-compare
OUT=$ROOT/bench/results
base_rev=$(git rev-parse --short "$BASE")
head_rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo "+changes")
mkdir -p "$WORK" "$OUT"

scripts/install-packages.sh xen-utils-4.17 xenstore-utils libxen-dev zlib1g-dev
gcc -O2 -Wall -o "$WORK/xsbench" bench/xsbench.c -lxenstore
swift build -c release --product xenstored >/dev/null
HEAD_BIN=$(swift build -c release --show-bin-path)/xenstored
# The base revision is built from a clean export of its tree, in its own build directory, shared with bench-profile
# (kept between runs for the same revision).
BASE_BIN=$(scripts/build-revision.sh "$BASE" "$ROOT/build/base-revision")

run_side() { # run_side NAME BINARY ROUND: fresh daemon, every point once, one CSV line each
    local name=$1 bin=$2 round=$3 run=$WORK/run-$1 pid point mode clients line
    rm -rf "$run" && mkdir -p "$run"
    setsid timeout 900 "$bin" --socket "$run/socket" --pid-file "$run/pid" >"$run/out" 2>&1 </dev/null &
    for _ in $(seq 1 200); do [ -S "$run/socket" ] && [ -s "$run/pid" ] && break; sleep 0.05; done
    [ -S "$run/socket" ] || { echo "bench-compare: $name did not start" >&2; cat "$run/out" >&2; exit 1; }
    pid=$(cat "$run/pid")
    for point in $POINTS; do
        mode=${point%%:*}; clients=${point##*:}
        case $mode in vm*) extra="-w 40 -r 5" ;; *) extra="" ;; esac
        # shellcheck disable=SC2086
        line=$(XENSTORED_PATH=$run/socket timeout 120 "$WORK/xsbench" -P "$name" -d "$DUR" -p "$pid" \
               -m "$mode" -n "$clients" $extra 2>>"$run/err" | tail -1) || line=""
        [ -n "$line" ] || { echo "bench-compare: $name $point failed" >&2; cat "$run/err" >&2; exit 1; }
        echo "$round,$line" >> "$CSV"
    done
    kill "$pid" 2>/dev/null || true
    sleep 0.3
}

CSV=$OUT/compare.csv
echo "round,peer,mode,clients,duration_s,writes_per_tx,shared_reads,ops,ops_per_s,commits,commits_per_s,eagain_retries,retries_per_commit,gaveup,errors,p50_us,p99_us,max_us,daemon_cpu_s,check" > "$CSV"
for round in $(seq 1 "$ROUNDS"); do
    echo "bench-compare: round $round of $ROUNDS"
    if [ $((round % 2)) -eq 1 ]; then
        run_side "base-$base_rev" "$BASE_BIN" "$round"; run_side "head-$head_rev" "$HEAD_BIN" "$round"
    else
        run_side "head-$head_rev" "$HEAD_BIN" "$round"; run_side "base-$base_rev" "$BASE_BIN" "$round"
    fi
done
python3 scripts/bench-compare-summary.py "$CSV" "base-$base_rev" "head-$head_rev" "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end" > "$OUT/compare.md"
cat "$OUT/compare.md"
