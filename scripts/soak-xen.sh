#!/usr/bin/env bash
# Soak of the stub-domain images under real Xen in QEMU: boots each image RUNS times through
# scripts/test-xen.sh with scripts/soak-xen-dom0.sh as dom0's test (test-xenstore random mode, guest
# create/destroy cycles, the store filled to 90 % of the heap and a guest created on top), and prints
# the tally with the commit and the date. Not part of `make test` (a run takes many minutes under TCG).
#
#   scripts/soak-xen.sh [RUNS] [VARIANTS]     (default 1, "pvh pv"; needs `make image` first)
#   SOAK_RANDOM_SECONDS, SOAK_CYCLES, SOAK_FILL_PERCENT   shorten a run (defaults 60, 50, 90)
#   SOAK_TIMEOUT                                          seconds per boot (default 3600)
#   SOAK_DISK=1   the image boots with --block and dom0 gives it a 64 MiB disk (xenstore-stubdom-disk)
#                 before the workload: every commit of the run is then persisted on it
# Logs: build/xen-test/soak-<variant>-<run>.log (QEMU console) and .out (test-xen.sh's summary).
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1}
VARIANTS=${2:-pvh pv}
mkdir -p build/xen-test
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+changes" || true)
# Runs alternate between the variants (run 1 of each, then run 2 of each, ...), and the tally so far
# is printed after every run, so a soak stopped early still counts both images evenly.
declare -A passed
for variant in $VARIANTS; do passed[$variant]=0; done
all_passed=1
tally() {
    local parts=() variant
    for variant in $VARIANTS; do parts+=("$variant ${passed[$variant]} of $1"); done
    (IFS=';'; echo "${parts[*]}" | sed 's/;/, /g')
}
for run in $(seq 1 "$RUNS"); do
    for variant in $VARIANTS; do
        base=build/xen-test/soak-$variant-$run
        start=$(date +%s)
        if XSTEST_SCRIPT=scripts/soak-xen-dom0.sh XEN_LOG=$base.log TIMEOUT=${SOAK_TIMEOUT:-3600} STUB_WORDS=${SOAK_DISK:+--block} \
            DOM0_EXTRA="SOAK_RANDOM_SECONDS=${SOAK_RANDOM_SECONDS:-60} SOAK_CYCLES=${SOAK_CYCLES:-50} SOAK_FILL_PERCENT=${SOAK_FILL_PERCENT:-90}${SOAK_DISK:+ SOAK_DISK=1}" \
            scripts/test-xen.sh "$variant" > "$base.out" 2>&1; then
            passed[$variant]=$((passed[$variant] + 1)); verdict=PASS
        else
            verdict=FAIL; all_passed=0
        fi
        echo "soak-xen: $variant run $run of $RUNS: $verdict in $(( $(date +%s) - start )) s ($(date -u '+%H:%M UTC'))"
        grep -h '@@SOAK\|CRASH\|exit code\|Triple fault\|domain_crash' "$base.log" | sed 's/^/    /' | head -20
    done
    echo "soak-xen: after run $run: $(tally "$run")"
done
echo "soak-xen: tally $(tally "$RUNS") (commit $commit$dirty, $(date -u '+%Y-%m-%d %H:%M UTC'))"
[ $all_passed -eq 1 ]
