#!/usr/bin/env bash
# start.sh: starts Debian's C xenstored (cx) or oxenstored (ox) without a hypervisor, serving RUNDIR/socket, for the benchmarks.
#
#   bench/peers/start.sh cx|ox RUNDIR [MAX_SECONDS]      (default 900; the daemon is killed after that)
#
# Both daemons come from xen-utils-4.17 and run with bench/peers/xenshim.c preloaded (built on first use
# into build/bench/libxenshim.so, or $XENSHIM), which answers the few Xen calls they make at start-up.
#   cx  /usr/lib/xen-4.17/bin/xenstored -N (no fork), its socket placed by XENSTORED_RUNDIR
#   ox  /usr/lib/xen-4.17/bin/oxenstored --no-fork --no-domain-init --no-access-log, with Debian's
#       /etc/xen/oxenstored.conf (quotas, conflict limits) but its pid and log files in RUNDIR; the shim
#       moves its built-in socket path to RUNDIR/socket. Its other built-in paths (/run/xenstored, its
#       database dump at exit) land in a private tmpfs on /run inside a mount namespace.
# PRELOAD_FIRST=LIB puts another library in front of the shim (the attack section's bench/ringshim.c,
# which serves an emulated guest ring); OX_NO_DOMAIN_INIT overrides oxenstored's --no-domain-init
# (empty: oxenstored polls its event channel, which it does only with domain init).
# Returns once RUNDIR/socket exists; RUNDIR/daemon.pid then holds the daemon's pid (bench/peers/stop.sh
# stops it), RUNDIR/out its output.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kind=${1:?cx or ox}; run=${2:?run directory}; seconds=${3:-900}
xenbin=/usr/lib/xen-4.17/bin
shim=${XENSHIM:-$root/build/bench/libxenshim.so}
if [ ! -e "$shim" ] || [ "$root/bench/peers/xenshim.c" -nt "$shim" ]; then
    mkdir -p "$(dirname "$shim")"
    gcc -O2 -Wall -Wextra -shared -fPIC -o "$shim" "$root/bench/peers/xenshim.c" -ldl
fi
rm -rf "$run" && mkdir -p "$run"
preload=${PRELOAD_FIRST:+$PRELOAD_FIRST:}$shim
run=$(cd "$run" && pwd)
case $kind in
    cx)
        XENSTORED_RUNDIR=$run XENSTORED_PATH=$run/socket LD_PRELOAD=$preload \
            setsid timeout "$seconds" "$xenbin/xenstored" -N >"$run/out" 2>&1 </dev/null & ;;
    ox)
        {
            grep -v -E '^[[:space:]]*(pid-file|xenstored-log-file|access-log-file|ring-scan-interval)[[:space:]]*=' \
                /etc/xen/oxenstored.conf
            echo "pid-file = $run/oxenstored.pid"
            echo "xenstored-log-file = $run/oxenstored.log"
            echo "access-log-file = $run/access.log"
            [ -n "${PRELOAD_FIRST:-}" ] || echo "ring-scan-interval = -1"   # no guest rings to scan
        } > "$run/oxenstored.conf"
        XENSHIM_SOCKET=$run/socket LD_PRELOAD=$preload setsid timeout "$seconds" \
            unshare -m --propagation private sh -c 'mount -t tmpfs -o size=16m xenshim-run /run && exec "$0" "$@"' \
            "$xenbin/oxenstored" --config-file "$run/oxenstored.conf" --no-fork ${OX_NO_DOMAIN_INIT---no-domain-init} --no-access-log \
            >"$run/out" 2>&1 </dev/null & ;;
    *) echo "start.sh: unknown peer $kind (cx or ox)" >&2; exit 2 ;;
esac
wrapper=$!
for _ in $(seq 1 200); do [ -S "$run/socket" ] && break; sleep 0.05; done
[ -S "$run/socket" ] || { echo "start.sh: $kind did not start:" >&2; cat "$run/out" >&2; kill "$wrapper" 2>/dev/null; exit 1; }
# the daemon is the child of `timeout` (for ox, unshare has exec'd sh, which exec'd oxenstored)
daemon=""
for _ in $(seq 1 50); do
    daemon=$(pgrep -P "$wrapper" | head -1 || true)
    [ -n "$daemon" ] && break
    sleep 0.05
done
[ -n "$daemon" ] || { echo "start.sh: no daemon process under timeout ($wrapper)" >&2; exit 1; }
echo "$daemon" > "$run/daemon.pid"
echo "$wrapper" > "$run/timeout.pid"
