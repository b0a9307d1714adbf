#!/usr/bin/env bash
# Runs `swift test` with its whole output kept in .build/swift-test.log; when it fails, ends with a
# summary (the fatal error, the crashed thread's frames, the failed tests), so the last lines of a
# CI log say what went wrong even when a crash dump (registers, images) came after it.
# Usage: scripts/swift-test.sh [swift test arguments...]   (SWIFT overrides the swift binary)
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
log=.build/swift-test.log
mkdir -p .build
"$swift" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo
    echo "=== swift test failed (exit $status); the whole output is in $log. Summary:"
    # The fatal error's message, the crashed thread and its first frames (Swift's backtracer).
    grep -a -n -E "Fatal error|Program crashed|Crash|exited with unexpected signal" "$log" | head -20
    awk '/^Thread [0-9]+ .*crashed:/ { on = 1; shown = 0 } on { print; if (++shown >= 40) on = 0 }' "$log" | head -80
    # Tests that failed or were started and never finished (the one that crashed is among them).
    grep -a -E "^✘ " "$log" | head -40
    started=$(grep -a -E "^◇ Test .* started\.$" "$log" | grep -a -v "^◇ Test case " | sed -E 's/^◇ Test (.*) started\.$/\1/' | grep -a -v '^run$' | sort -u)
    ended=$(grep -a -E "^(✔|✘) Test " "$log" \
        | sed -E 's/^(✔|✘) Test (.*) (passed|failed) after .*$/\2/; s/ with [0-9]+ test cases?$//' | sort -u)
    unfinished=$(comm -23 <(echo "$started") <(echo "$ended"))
    [ -n "$unfinished" ] && { echo "=== started and never finished:"; echo "$unfinished" | head -40; }
fi
exit "$status"
