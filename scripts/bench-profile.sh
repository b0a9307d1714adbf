#!/usr/bin/env bash
# make bench-profile BASE=REV: where REV's daemon and this tree's spend their time under vmstart, side by side (perf samples by category, top symbols, callgrind instructions per commit) -> bench/results/profile.md.
#   BASE=REV (default HEAD~1); CLIENTS=vmstart clients (16); DUR=seconds sampled by perf (10);
#   CG_DUR=seconds of the same load under callgrind (10).
# Writes bench/results/profile-runs.csv, profile.csv and profile.md (bench/profile-summary.py); the
# raw reports (perf's flat report and callgrind_annotate's, demangled) stay in build/bench-profile.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${BASE:-HEAD~1}
CLIENTS=${CLIENTS:-16}
DUR=${DUR:-10}
CG_DUR=${CG_DUR:-10}
WORK=$ROOT/build/bench-profile
OUT=$ROOT/bench/results
base_label=base-$(git rev-parse --short "$BASE")
head_label=head-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo "+changes")
mkdir -p "$WORK" "$OUT"

scripts/install-packages.sh xen-utils-4.17 xenstore-utils libxen-dev zlib1g-dev linux-perf valgrind
gcc -O2 -Wall -o "$WORK/xsbench" bench/xsbench.c -lxenstore
swift build -c release --product xenstored >/dev/null
HEAD_BIN=$(swift build -c release --show-bin-path)/xenstored
BASE_BIN=$(scripts/build-revision.sh "$BASE" "$ROOT/build/base-revision")
DEMANGLE=$(dirname "$(readlink -f "$(command -v swift)")")/swift-demangle
[ -x "$DEMANGLE" ] || DEMANGLE=cat

start_daemon() { # start_daemon RUN BINARY [WRAPPER...]: a fresh daemon on RUN/socket, its pid in RUN/pid
    local run=$1 bin=$2
    shift 2
    rm -rf "$run" && mkdir -p "$run"
    setsid "$@" "$bin" --socket "$run/socket" --pid-file "$run/pid" >"$run/out" 2>&1 </dev/null &
    for _ in $(seq 1 600); do [ -S "$run/socket" ] && [ -s "$run/pid" ] && break; sleep 0.05; done
    [ -S "$run/socket" ] || { echo "bench-profile: $bin did not start" >&2; cat "$run/out" >&2; exit 1; }
}
stop_daemon() { # stop_daemon RUN: SIGTERM, then wait until the process is gone (callgrind writes its file at exit)
    local pid
    pid=$(cat "$1/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    echo "bench-profile: daemon $pid did not stop" >&2; exit 1
}
vmstart() { # vmstart RUN LABEL SECONDS: the load; prints xsbench's CSV line
    XENSTORED_PATH=$1/socket timeout $(($3 + 120)) "$WORK/xsbench" -P "$2" -m vmstart -n "$CLIENTS" -w 40 -r 5 \
        -d "$3" -p "$(cat "$1/pid")" 2>>"$1/err" | tail -1
}

echo "label,commit,clients,commits_per_s,samples,callgrind_commits,instructions_per_commit" > "$OUT/profile-runs.csv"
profile_side() { # profile_side LABEL BINARY REV (REV names the commit in profile-runs.csv)
    local label=$1 bin=$2 run=$WORK/run-$1 line rate samples commits instructions
    echo "bench-profile: $label: perf"
    start_daemon "$run" "$bin"
    vmstart "$run" "$label" $((DUR + 4)) > "$run/load.csv" &
    local load=$!
    sleep 2
    perf record -e cpu-clock -g -p "$(cat "$run/pid")" -o "$run/perf.data" -- sleep "$DUR" >"$run/perf.log" 2>&1
    wait "$load"
    stop_daemon "$run"
    line=$(cat "$run/load.csv")
    [ -n "$line" ] || { echo "bench-profile: $label: the load failed" >&2; cat "$run/err" >&2; exit 1; }
    rate=$(echo "$line" | cut -d, -f10)
    perf report -i "$run/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | "$DEMANGLE" --simplified > "$WORK/profile-$label.txt"
    samples=$(sed -n 's/^# Samples: \([^ ]*\) .*/\1/p' "$WORK/profile-$label.txt" | head -1)
    echo "bench-profile: $label: callgrind"
    start_daemon "$run-cg" "$bin" valgrind --tool=callgrind --callgrind-out-file="$run-cg/callgrind.out"
    line=$(vmstart "$run-cg" "$label" "$CG_DUR")
    stop_daemon "$run-cg"
    commits=$(echo "$line" | cut -d, -f9)
    instructions=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$run-cg/out")
    callgrind_annotate --inclusive=yes "$run-cg/callgrind.out" 2>/dev/null | "$DEMANGLE" --simplified > "$WORK/profile-$label-callgrind.txt"
    [ -n "$commits" ] && [ "$commits" -gt 0 ] && [ -n "$instructions" ] \
        || { echo "bench-profile: $label: no callgrind figures" >&2; cat "$run-cg/out" "$run-cg/err" >&2; exit 1; }
    echo "$label,$(git rev-parse --short "${3:-HEAD}"),$CLIENTS,$rate,$samples,$commits,$((instructions / commits))" >> "$OUT/profile-runs.csv"
}
profile_side "$base_label" "$BASE_BIN" "$BASE"
profile_side "$head_label" "$HEAD_BIN" HEAD
python3 bench/profile-summary.py "$OUT" "$WORK" "$base_label" "$head_label"
echo "bench-profile: wrote $OUT/profile.md"
