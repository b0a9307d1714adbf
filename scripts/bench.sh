#!/usr/bin/env bash
# make bench: the same xsbench workloads against our daemon (in memory and with --database),
# C xenstored and oxenstored from Debian's xen-utils-4.17, in one run, started fresh each (the two
# peers run without a hypervisor through bench/peers: start.sh, stop.sh and the xenshim.c library).
# Writes bench/results/bench.csv, bench/results/summary.md and bench/results/*.png.
#   DUR=seconds per run (default 2), REPEAT=runs per point (default 3; the median rate is kept)
#   PEERS="swift swift-db cx ox null" (default all five; "" skips); null is bench/peers/nullserver.c,
#   a server that answers every request at once and stores nothing: the limit the client, the
#   socket and the machine set, measured for write, read and directory only (issue 20)
#   BENCH_SECTION=main runs only this section (and the summary); =memory only the memory section
# Then three longer workloads (issue 8), each on a fresh daemon:
#   slow watcher (slowwatch.csv): 4 writers of new keys under /bench/w, without a watcher and
#     with one raw-socket watcher reading SLOW_RATE events/s (default 1000) for DUR_SLOW s (5);
#     SLOW_PEERS (default "swift cx ox")
#   store growth (growth.csv, mode scale): SCALE_DOMAINS (10000) x SCALE_NODES (50) writes,
#     one series point per 10,000 writes (us/write, daemon RSS); GROW_PEERS ("swift swift-block cx ox")
#   long history (growth.csv, mode history): HISTORY_COMMITS (1000000) rewrites of 100 keys;
#     HISTORY_PEERS ("swift swift-block cx ox"; swift-block = --block FILE --block-size 64M)
#   each growth/history run stops after GROW_SECONDS (default 90) and reports how far it got.
#   BENCH_SCALE=F multiplies SCALE_DOMAINS and HISTORY_COMMITS (e.g. 0.1 for a quick run).
# Last, --database packing (dbpack.csv): DB_COMMITS (100000) commits on --database with background
#   repacking off, then the repository's file count and a 'write -n 1' point (DUR_DB s, default 5,
#   after a sync), `xsctl gc` while the daemon runs, and the file count and the same point again.
#   DB_PACK=0 skips it.
# Memory per node (memory.csv, issue 20): MEM_GUESTS (1300, about 141,000 nodes) guests' nodes as xl writes them
#   (scripts/xl-guest-nodes.sh) on a fresh daemon; RSS growth per node for MEM_PEERS (default
#   "swift swift-block cx ox"; "" skips), and for ours the C heap in use (mallinfo2) per node.
# Under attack (attack.csv, issue 21): dom0 `vmstart` N=8 (40 writes, 5 shared reads + the attacked
#   node per transaction) without and with one guest rewriting, as fast as it can, a node it owns
#   that every dom0 transaction reads (the XSA-206 pattern). The guest is an UNPRIVILEGED domain on
#   an emulated xenstore ring (a shared page and two FIFOs under RUNDIR/rings): our daemon serves
#   it with --ring-dir, C xenstored and oxenstored through bench/ringshim.c in front of the peers
#   shim (oxenstored then runs without --no-domain-init, so that it polls its event channel).
#   ATTACK=0 skips it; ATTACK_PEERS (default "swift cx ox"); DUR_ATTACK s per run (5);
#   ATTACK_REPEAT runs per point, fresh daemon each (3; the median dom0 commit rate is kept);
#   ATTACKER=dom0 makes the attacker a privileged socket client instead (attacker_privilege says which).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
WORK=$ROOT/build/bench
DUR=${DUR:-2}
REPEAT=${REPEAT:-3}
PEERS=${PEERS-swift swift-db cx ox null}
mkdir -p "$OUT" "$WORK"
# Stamped into the generated docs/benchmarks.md: when, which commit, which machine.
run_info() { # run_info: one line of key=value pairs (values without spaces)
    echo "date=$(date -u +%Y-%m-%dT%H:%MZ) commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift bench scripts || echo +changes)" \
         "cpus=$(nproc) cpu=$(awk -F': ' '/^model name/ { gsub(/ +/, "_", $2); print $2; exit }' /proc/cpuinfo)" \
         "mem_gib=$(awk '/^MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo) load_before=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
}
case ${BENCH_SECTION:-} in ""|main) run_info > "$OUT/run-info.txt" ;; esac   # the main tables' stamp

scripts/install-packages.sh xen-utils-4.17 xenstore-utils libxen-dev zlib1g-dev
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib || echo "bench: no matplotlib, no plots"
gcc -O2 -Wall -o "$WORK/xsbench" bench/xsbench.c -lxenstore
swift build -c release --product xenstored >/dev/null
OURS=$(swift build -c release --show-bin-path)/xenstored

RINGS=""                          # the attack section sets 1: serve emulated guest rings in RUNDIR/rings
NO_DOMAIN_INIT=--no-domain-init   # oxenstored; the attack section clears it (see there)
start() { # start NAME RUNDIR: starts a daemon listening on RUNDIR/socket, pid in RUNDIR/daemon.pid
    local name=$1 run=$2
    rm -rf "$run" && mkdir -p "$run"
    case $name in
        swift) setsid timeout 900 "$OURS" --socket "$run/socket" --pid-file "$run/daemon.pid" ${RINGS:+--ring-dir "$run/rings"} >"$run/out" 2>&1 </dev/null & ;;
        swift-block) setsid timeout 900 "$OURS" --socket "$run/socket" --pid-file "$run/daemon.pid" --block "$run/history.img" --block-size 64M >"$run/out" 2>&1 </dev/null & ;;
        swift-db) setsid timeout 900 "$OURS" --socket "$run/socket" --pid-file "$run/daemon.pid" --database "$run/db" >"$run/out" 2>&1 </dev/null & ;;
        swift-db-loose) setsid timeout 900 "$OURS" --socket "$run/socket" --pid-file "$run/daemon.pid" --database "$run/db" --repack-every 0 >"$run/out" 2>&1 </dev/null & ;;
        null) gcc -O2 -Wall -Wextra -o "$WORK/nullserver" bench/peers/nullserver.c
              setsid timeout 900 "$WORK/nullserver" "$run/socket" "$run/daemon.pid" >"$run/out" 2>&1 </dev/null & ;;
        # The attack section serves an emulated guest ring: bench/ringshim.c in front of the shim.
        cx|ox) XENSHIM=$WORK/libxenshim.so PRELOAD_FIRST=${RINGS:+$WORK/libringshim.so} XS_SHIM_RING_DIR=$run/rings \
                   OX_NO_DOMAIN_INIT="$NO_DOMAIN_INIT" bench/peers/start.sh "$name" "$run" 900 ;;
    esac
    for _ in $(seq 1 200); do [ -S "$run/socket" ] && break; sleep 0.05; done
    [ -S "$run/socket" ] || { echo "bench: $name did not start:"; cat "$run/out"; return 1; }
}
stop() { # stop RUNDIR
    bench/peers/stop.sh "$1"
}

# ---- memory per node (issue 20): MEM_GUESTS guests' nodes, as xl writes them, on a fresh daemon ----
# RSS before and after (every peer), and for ours the C heap in use (CONTROL memreport, mallinfo2),
# divided by the nodes added. MEM_PEERS (default "swift swift-block cx ox"; "" skips).
memory_section() {
    local peers=${MEM_PEERS-swift swift-block cx ox} guests=${MEM_GUESTS:-1300}
    local csv=$OUT/memory.csv peer run pid nodes0 rss0 rss1 heap0 heap1 t0 t1 i
    local added="" counted_on=""
    # the stamp first: run_info marks the run "+changes" when bench/ differs from the commit
    echo "$(run_info) guests=$guests" > "$OUT/memory-conditions.txt"
    echo "peer,guests,nodes_added,nodes_counted_on,rss_before_kb,rss_after_kb,rss_bytes_per_node,heap_before_kb,heap_after_kb,heap_bytes_per_node,write_s" > "$csv"
    . scripts/xl-guest-nodes.sh
    # (the Xen 4.17 binary itself: Debian's /usr/bin wrapper asks the running hypervisor for its version)
    heap_kb() { /usr/lib/xen-4.17/bin/xenstore-control memreport 2>/dev/null | awk -F': ' '/^heap in use KiB/ { print $2 }' || true; }
    for peer in $peers; do
        run=$WORK/memory-$peer
        echo "bench: $peer memory, $guests guests"
        start "$peer" "$run"; pid=$(cat "$run/daemon.pid"); export XENSTORED_PATH=$run/socket
        # oxenstored cannot list a directory whose names pass 4096 bytes (no DIRECTORY_PART): where
        # xenstore-ls fails, the count of the first peer that could list is used (the same writes)
        nodes0=$(xenstore-ls -f / 2>/dev/null | wc -l || true); rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status); heap0=$(heap_kb)
        t0=$(date +%s.%N)
        for i in $(seq 1 "$guests"); do populate_guest $((i + 100)); done
        t1=$(date +%s.%N)
        # read before listing the store, which makes every daemon allocate for its replies
        rss1=$(awk '/VmRSS/{print $2}' /proc/$pid/status); heap1=$(heap_kb)
        if xenstore-ls -f / >"$run/ls" 2>/dev/null && [ -z "$added" ]; then
            added=$(( $(wc -l < "$run/ls") - nodes0 )); counted_on=$peer
        fi
        [ -n "$added" ] || { echo "bench: memory: no peer could list the store"; stop "$run"; return 1; }
        awk -v p="$peer" -v g="$guests" -v n="$added" -v c="$counted_on" -v r0="$rss0" -v r1="$rss1" \
            -v h0="$heap0" -v h1="$heap1" -v t0="$t0" -v t1="$t1" 'BEGIN {
            hb = (h0 == "" || h1 == "") ? "" : sprintf("%.0f", (h1 - h0) * 1024 / n)
            printf "%s,%d,%d,%s,%d,%d,%.0f,%s,%s,%s,%.1f\n", p, g, n, c, r0, r1, (r1 - r0) * 1024 / n, h0, h1, hb, t1 - t0 }' >> "$csv"
        echo "  -> $(tail -1 "$csv")"
        stop "$run"
    done
}
# make bench-memory: this section alone (the other results stay as they are)
if [ "${BENCH_SECTION:-}" = memory ]; then
    memory_section
    python3 scripts/bench-summary.py "$OUT/bench.csv" "$OUT"
    exit 0
fi

# pick_run RATE_FIELD: of the CSV lines of a point's runs (stdin), prints the run with the median
# rate in column RATE_FIELD, or the first run that failed a check (gave up, errors, a failed child,
# lost watch events) so that a median never hides a failure.
pick_run() {
    sort -t, -k"$1,$1"g | awk -F, '
        function failed(l,   f, c, ev, wr) {
            split(l, f, ","); c = f[19]
            if (f[13] > 0 || f[14] > 0 || c ~ /MISMATCH|children_failed|first_err/) return 1
            if (c ~ /^events=/) { ev = c; sub(/^events=/, "", ev); sub(/;.*/, "", ev)
                                  wr = c; sub(/.*writes=/, "", wr); sub(/;.*/, "", wr)
                                  return ev + 0 < wr + 0 }
            return 0
        }
        NF { a[n++] = $0; if (bad == "" && failed($0)) bad = $0 }
        END { if (bad != "") print bad; else if (n) print a[int((n - 1) / 2)] }'
}

CSV=$OUT/bench.csv
echo "peer,mode,clients,duration_s,writes_per_tx,shared_reads,ops,ops_per_s,commits,commits_per_s,eagain_retries,retries_per_commit,gaveup,errors,p50_us,p99_us,max_us,daemon_cpu_s,check,rss_kb" > "$CSV"
for peer in $PEERS; do
    run=$WORK/run-$peer
    echo "bench: $peer"
    start "$peer" "$run"
    pid=$(cat "$run/daemon.pid")
    export XENSTORED_PATH=$run/socket
    # A point is the run with the median rate of REPEAT runs (noise on a shared machine hits
    # single runs), except that a run which failed a check (lost update, errors, gave up, lost
    # watch events, a stuck client) is kept instead, so a median never hides a failure.
    point() {
        local runs="" one rate_field
        case " $* " in *" -m vm"*) rate_field=10 ;; *) rate_field=8 ;; esac
        for _ in $(seq 1 "$REPEAT"); do
            one=$(timeout 120 "$WORK/xsbench" -P "$peer" -d "$DUR" -p "$pid" "$@" 2>>"$run/bench.log" | tail -1) || one=""
            [ -n "$one" ] && runs+="$one"$'\n'
        done
        line=$(printf '%s' "$runs" | pick_run "$rate_field")
        [ -n "$line" ] && echo "$line,$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null)" >> "$CSV"
        echo "  $* -> ${line:-FAILED}" | cut -c1-160
    }
    for m in write read dir; do point -m $m -n 1; point -m $m -n 4; done
    if [ "$peer" = null ]; then stop "$run"; continue; fi   # the limit: single requests only
    for n in 1 2 4 8 16 32 64 200; do point -m vmstart -n $n -w 40 -r 5; done
    for n in 1 8 32; do point -m vmshared -n $n -w 40 -r 5; done
    for w in 20 100; do for n in 8 32; do point -m vmstart -n $n -w $w -r 5; done; done
    for n in 2 8; do point -m watch -n $n; done
    stop "$run"
done
if [ "${BENCH_SECTION:-}" = main ]; then
    python3 scripts/bench-summary.py "$CSV" "$OUT"
    exit 0
fi
# ---- slow watcher, store growth, long history ----
SLOW_PEERS=${SLOW_PEERS-swift cx ox}
GROW_PEERS=${GROW_PEERS-swift swift-block cx ox}
HISTORY_PEERS=${HISTORY_PEERS-swift swift-block cx ox}
DUR_SLOW=${DUR_SLOW:-5}
SLOW_RATE=${SLOW_RATE:-1000}
GROW_SECONDS=${GROW_SECONDS:-90}
BENCH_SCALE=${BENCH_SCALE:-1}
SCALE_NODES=${SCALE_NODES:-50}
SCALE_DOMAINS=$(awk -v n="${SCALE_DOMAINS:-10000}" -v f="$BENCH_SCALE" 'BEGIN { printf "%d", n * f }')
HISTORY_COMMITS=$(awk -v n="${HISTORY_COMMITS:-1000000}" -v f="$BENCH_SCALE" 'BEGIN { printf "%d", n * f }')
SLOWCSV=$OUT/slowwatch.csv
GROWCSV=$OUT/growth.csv
RUNSCSV=$OUT/growth-runs.csv
head -1 "$CSV" > "$SLOWCSV"
head -1 "$CSV" > "$RUNSCSV"
echo "peer,mode,writes,domains,us_per_write,rss_kb,elapsed_s" > "$GROWCSV"
: > "$OUT/block-history.txt"
for peer in $SLOW_PEERS; do
    run=$WORK/slow-$peer
    echo "bench: $peer slow watcher"
    for rate in -1 "$SLOW_RATE"; do
        start "$peer" "$run"; pid=$(cat "$run/daemon.pid"); export XENSTORED_PATH=$run/socket
        line=$(timeout 120 "$WORK/xsbench" -P "$peer" -m slowwatch -n 5 -d "$DUR_SLOW" -s "$rate" -p "$pid" 2>>"$run/bench.log" | tail -1) || line=""
        [ -n "$line" ] && echo "$line,$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null)" >> "$SLOWCSV"
        echo "  slowwatch -s $rate -> ${line:-FAILED}" | cut -c1-200
        stop "$run"
    done
done
grow_run() { # grow_run PEER MODE ARGS...: one scale/history run on a fresh daemon
    local peer=$1 mode=$2; shift 2
    local run=$WORK/$mode-$peer
    echo "bench: $peer $mode $*"
    start "$peer" "$run"; pid=$(cat "$run/daemon.pid"); export XENSTORED_PATH=$run/socket
    line=$(timeout $((GROW_SECONDS + 200)) "$WORK/xsbench" -P "$peer" -m "$mode" -d "$GROW_SECONDS" -b 10000 \
        -p "$pid" -o "$GROWCSV" "$@" 2>>"$run/bench.log" | tail -1) || line=""
    [ -n "$line" ] && echo "$line,$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null)" >> "$RUNSCSV"
    echo "  -> ${line:-FAILED}" | cut -c1-200
    stop "$run"
}
for peer in $GROW_PEERS; do grow_run "$peer" scale -N "$SCALE_DOMAINS" -w "$SCALE_NODES"; done
for peer in $HISTORY_PEERS; do
    grow_run "$peer" history -N "$HISTORY_COMMITS"
    if [ "$peer" = swift-block ]; then
        # What the fixed-size device kept: export it as git and count the commits still there.
        run=$WORK/history-swift-block
        rm -rf "$run/export"
        if "$OURS" --export-block "$run/history.img" --to "$run/export" >"$run/export.log" 2>&1; then
            kept=$(git -C "$run/export" rev-list --count main 2>/dev/null || echo "?")
            written=$(tail -1 "$RUNSCSV" | awk -F, '{print $9}')
            echo "device_bytes=$(stat -c %s "$run/history.img") commits_written=$written commits_kept=$kept" > "$OUT/block-history.txt"
        else
            echo "export failed: $(tail -1 "$run/export.log")" > "$OUT/block-history.txt"
        fi
        cat "$OUT/block-history.txt"
    fi
done

# ---- --database packing: file count and write rate after DB_COMMITS commits, before and after packing ----
if [ "${DB_PACK:-1}" != 0 ]; then
    DB_COMMITS=$(awk -v n="${DB_COMMITS:-100000}" -v f="$BENCH_SCALE" 'BEGIN { printf "%d", n * f }')
    swift build -c release --product xsctl >/dev/null
    XSCTL=$(swift build -c release --show-bin-path)/xsctl
    run=$WORK/dbpack
    echo "bench: --database packing after $DB_COMMITS commits"
    echo "phase,commits,files,loose_objects,packs,writes_per_s" > "$OUT/dbpack.csv"
    start swift-db-loose "$run"; pid=$(cat "$run/daemon.pid"); export XENSTORED_PATH=$run/socket
    timeout $((GROW_SECONDS * 4 + 200)) "$WORK/xsbench" -P swift-db -m history -N "$DB_COMMITS" -d $((GROW_SECONDS * 4)) \
        -b 10000 -p "$pid" -o /dev/null >/dev/null 2>>"$run/bench.log" || true
    commits=$(git -C "$run/db" rev-list --count main)
    dbpoint() { # dbpoint PHASE: files, loose objects, packs and one write point -> dbpack.csv
        local files loose packs rate
        files=$(find "$run/db/.git" -type f | wc -l)
        loose=$(git -C "$run/db" count-objects -v | awk '/^count:/{print $2}')
        packs=$(git -C "$run/db" count-objects -v | awk '/^packs:/{print $2}')
        sync  # measure both points without the writeback of what came before (100k commits, or the repack)
        rate=$(timeout 120 "$WORK/xsbench" -P swift-db -m write -n 1 -d "${DUR_DB:-5}" 2>>"$run/bench.log" | tail -1 | awk -F, '{print $8}')
        echo "$1,$commits,$files,$loose,$packs,${rate:-FAILED}" >> "$OUT/dbpack.csv"
        echo "  $1: $commits commits, $files files ($loose loose objects, $packs packs), ${rate:-FAILED} writes/s"
    }
    dbpoint before-packing
    started=$(date +%s.%N)
    "$XSCTL" -C "$run/db" gc
    echo "  xsctl gc took $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    dbpoint after-packing
    stop "$run"
fi

# ---- under attack (issue 21): dom0's vmstart while a guest rewrites a node its transactions read ----
attack_section() {
    local peers=${ATTACK_PEERS-swift cx ox} dur=${DUR_ATTACK:-5} repeat=${ATTACK_REPEAT:-3} kind=${ATTACKER:-ring}
    local csv=$OUT/attack.csv peer attacker run pid one runs line
    gcc -O2 -Wall -shared -fPIC -o "$WORK/libringshim.so" bench/ringshim.c -ldl
    echo "peer,mode,clients,duration_s,writes_per_tx,shared_reads,ops,ops_per_s,commits,commits_per_s,eagain_retries,retries_per_commit,gaveup,errors,p50_us,p99_us,max_us,daemon_cpu_s,check,attacker,attacker_privilege,attacker_writes,attacker_writes_per_s,attacker_errors,rss_kb" > "$csv"
    # The guest's ring needs an event channel the daemon polls: oxenstored polls its own only when
    # it also sets up dom0's ring, so here it runs without --no-domain-init.
    RINGS=1 NO_DOMAIN_INIT=""
    echo "$(run_info) duration_s=$dur runs_per_point=$repeat" > "$OUT/attack-conditions.txt"
    for peer in $peers; do
        for attacker in none "$kind"; do
            runs=""
            run=$WORK/attack-$peer
            for _ in $(seq 1 "$repeat"); do
                start "$peer" "$run"; pid=$(cat "$run/daemon.pid")
                one=$(XENSTORED_PATH=$run/socket timeout $((dur + 90)) "$WORK/xsbench" -P "$peer" -m vmstart -n 8 -w 40 -r 5 \
                      -d "$dur" -p "$pid" -a 7 -g "$attacker" -R "$run/rings" 2>>"$WORK/attack-$peer.log" | tail -1) || one=""
                [ -n "$one" ] && runs+="$one,$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null)"$'\n'
                stop "$run"
            done
            line=$(printf '%s' "$runs" | pick_run 10)
            [ -n "$line" ] && echo "$line" >> "$csv"
            echo "  attack $peer attacker=$attacker -> ${line:-FAILED}" | cut -c1-200
        done
    done
    echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" >> "$OUT/attack-conditions.txt"
    RINGS="" NO_DOMAIN_INIT=--no-domain-init
}
if [ "${ATTACK:-1}" != 0 ]; then
    echo "bench: under attack"
    attack_section
fi

if [ -n "${MEM_PEERS-x}" ]; then memory_section; fi

python3 scripts/bench-summary.py "$CSV" "$OUT"
echo "bench: results in $OUT (summary.md, bench.csv, *.png)"
