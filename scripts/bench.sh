#!/usr/bin/env bash
# make bench: the same xsbench workloads against our daemon (in memory and with --database),
# C xenstored and oxenstored from Debian's xen-utils-4.17, in one run, started fresh each.
# Writes bench/results/bench.csv, bench/results/summary.md and bench/results/*.png.
#   DUR=seconds per point (default 2)   PEERS="swift swift-db cx ox" (default all four)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/peers}
OUT=$ROOT/bench/results
WORK=$ROOT/build/bench
DUR=${DUR:-2}
PEERS=${PEERS:-swift swift-db cx ox}
mkdir -p "$OUT" "$WORK"

scripts/install-packages.sh xen-utils-4.17 xenstore-utils libxen-dev zlib1g-dev
[ -f "$PEERS_SRC/bench/xsbench.c" ] || { echo "bench: load generator not found at $PEERS_SRC" >&2; exit 2; }
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib || echo "bench: no matplotlib, no plots"
gcc -O2 -Wall -o "$WORK/xsbench" "$PEERS_SRC/bench/xsbench.c" -lxenstore
# The peers need a few libxenctrl/libxenevtchn calls faked to start without a hypervisor.
gcc -O2 -Wall -shared -fPIC -o "$WORK/libxenshim.so" "$PEERS_SRC/shim/xenshim.c" -ldl
swift build -c release --product xenstored >/dev/null
OURS=$(swift build -c release --show-bin-path)/xenstored

start() { # start NAME RUNDIR: starts a daemon listening on RUNDIR/socket, pid in RUNDIR/daemon.pid
    local name=$1 run=$2
    rm -rf "$run" && mkdir -p "$run"
    case $name in
        swift) setsid timeout 900 "$OURS" --socket "$run/socket" --pid-file "$run/daemon.pid" >"$run/out" 2>&1 </dev/null & ;;
        swift-db) setsid timeout 900 "$OURS" --socket "$run/socket" --pid-file "$run/daemon.pid" --database "$run/db" >"$run/out" 2>&1 </dev/null & ;;
        cx) XENSTORED_RUNDIR=$run XENSTORED_PATH=$run/socket LD_PRELOAD=$WORK/libxenshim.so \
                setsid timeout 900 /usr/lib/xen-4.17/bin/xenstored -N >"$run/out" 2>&1 </dev/null &
            echo $! > "$run/wrapper.pid" ;;
        ox) sed "s#shared/peers/run/ox#$run#g" "$PEERS_SRC/oxenstored-test.conf" > "$run/oxenstored.conf"
            # oxenstored's socket and dump paths are compiled in: give it a private /run.
            XS_SHIM_SOCKET=$run/socket LD_PRELOAD=$WORK/libxenshim.so setsid timeout 900 \
                unshare -m --propagation private sh -c 'mount -t tmpfs -o size=16m xsrun /run && exec "$0" "$@"' \
                /usr/lib/xen-4.17/bin/oxenstored --config-file "$run/oxenstored.conf" --no-fork --no-domain-init --no-access-log \
                >"$run/out" 2>&1 </dev/null &
            echo $! > "$run/wrapper.pid" ;;
    esac
    for _ in $(seq 1 200); do [ -S "$run/socket" ] && break; sleep 0.05; done
    [ -S "$run/socket" ] || { echo "bench: $name did not start:"; cat "$run/out"; return 1; }
    if [ ! -s "$run/daemon.pid" ]; then  # peers: the daemon is the child of the timeout wrapper
        pid=""
        for _ in $(seq 1 50); do
            pid=$(pgrep -P "$(cat "$run/wrapper.pid")" | head -1 || true)
            [ -n "$pid" ] && break; sleep 0.05
        done
        echo "$pid" > "$run/daemon.pid"
    fi
}
stop() { # stop RUNDIR
    local pid; pid=$(cat "$1/daemon.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null; sleep 0.3; [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
}

CSV=$OUT/bench.csv
echo "peer,mode,clients,duration_s,writes_per_tx,shared_reads,ops,ops_per_s,commits,commits_per_s,eagain_retries,retries_per_commit,gaveup,errors,p50_us,p99_us,max_us,daemon_cpu_s,check,rss_kb" > "$CSV"
for peer in $PEERS; do
    run=$WORK/run-$peer
    echo "bench: $peer"
    start "$peer" "$run"
    pid=$(cat "$run/daemon.pid")
    export XENSTORED_PATH=$run/socket
    point() {
        line=$(timeout 120 "$WORK/xsbench" -P "$peer" -d "$DUR" -p "$pid" "$@" 2>>"$run/bench.log" | tail -1) || line=""
        [ -n "$line" ] && echo "$line,$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null)" >> "$CSV"
        echo "  $* -> ${line:-FAILED}" | cut -c1-160
    }
    for m in write read dir; do point -m $m -n 1; point -m $m -n 4; done
    for n in 1 8 32 64; do point -m vmstart -n $n -w 40 -r 5; done
    for n in 1 8 32; do point -m vmshared -n $n -w 40 -r 5; done
    point -m vmstart -n 8 -w 100 -r 5
    for n in 2 8; do point -m watch -n $n; done
    stop "$run"
done
python3 scripts/bench-summary.py "$CSV" "$OUT"
echo "bench: results in $OUT (summary.md, bench.csv, *.png)"
