#!/usr/bin/env bash
# stop.sh: stops the daemon whose pid is in RUNDIR/daemon.pid (TERM, then KILL after 2 s), and its timeout wrapper if any.
#   bench/peers/stop.sh RUNDIR
run=${1:?run directory}
daemon=$(cat "$run/daemon.pid" 2>/dev/null || true)
if [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null; then
    for _ in $(seq 1 40); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$daemon" 2>/dev/null
fi
wrapper=$(cat "$run/timeout.pid" 2>/dev/null || true)
[ -z "$wrapper" ] || kill -TERM "$wrapper" 2>/dev/null
rm -f "$run/socket"
exit 0
