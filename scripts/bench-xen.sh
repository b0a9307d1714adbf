#!/usr/bin/env bash
# bench-xen.sh: the stub domain against C xenstored under real Xen in QEMU: boots alternately with each as the host's Xenstore, runs the same xsbench workloads in dom0 over /dev/xen/xenbus, and writes CSV and a summary of medians and ratios.
#
#   scripts/bench-xen.sh [BOOTS]      (default 3 boots per side; needs `make image`)
#   BENCH_SECONDS   seconds per workload (default 5)     VARIANT   pvh (default) or pv: the stub image
#   IMAGE           another stub image (e.g. an older commit's), RESULTS   another prefix for the .csv/.md
#   PIN             apart (default): dom0's vCPU on physical CPU 0, the stub's on 1; same: both on 0; PIN= : Xen's
#                   scheduler places them (runs then spread twice as wide: docs/benchmark-notes.md)
#   SIDES           which Xenstores to boot, in order (default "stub cxen"; "stub" for profiling runs)
# Not part of `make test`. Each boot is Debian's Xen 4.17 + dom0 under QEMU (TCG, 2 emulated CPUs,
# dom0 with one vCPU); the stub gets 16 MiB and its usual words, C xenstored is Debian's. The load
# generator is bench/xsbench.c (libxenstore) in dom0: write, read and directory with one client,
# vmstart (transactions of 40 writes) with 1 and 8 clients. Results: bench/results/xen.csv (one row per
# boot and workload), bench/results/xen-profile.csv (the stub's CONTROL profile per boot and workload:
# microseconds per phase of its event loop) and bench/results/xen.md (medians, ratios, CPU time per
# request, where the stub's time goes).
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTS=${1:-3}
VARIANT=${VARIANT:-pvh}
HARNESS=tools/xen-qemu
WORK=build/xen-test            # the Xen and kernel packages are shared with make test-xen
OUT=build/bench-xen
IMAGE=${IMAGE:-build/xenstore-stubdom-x86_64-$VARIANT}
RESULTS=${RESULTS:-bench/results/xen}
[ -e "$IMAGE" ] || { echo "bench-xen: $IMAGE missing, run make image" >&2; exit 2; }
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /usr/lib/xen-4.17/bin/xenstored ] || need+=(xen-utils-4.17)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
[ -e /usr/include/xenstore.h ] || need+=(libxen-dev)
[ ${#need[@]} -eq 0 ] || scripts/install-packages.sh "${need[@]}"
. "$HARNESS/fetch-x86.sh"

rm -rf "$OUT" && mkdir -p "$OUT/payload/guests" "$OUT/payload/usr/bin" bench/results
cp "$IMAGE" "$OUT/payload/guests/"
cp scripts/bench-xen-dom0.sh "$OUT/payload/test.sh"
gcc -O2 -Wall -o "$OUT/payload/usr/bin/xsbench" bench/xsbench.c -lxenstore
"$HARNESS/make-initramfs.sh" / "$WORK/x" "$KVER" "$OUT/initrd.cpio.gz" "$OUT/payload" >/dev/null

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+changes" || true)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
csv=$RESULTS.csv
profile=$RESULTS-profile.csv
echo "boot,workload,counter,value" > "$profile.new"
echo "boot,side,workload,peer,mode,clients,duration_s,writes_per_tx,shared_reads,ops,ops_per_s,commits,commits_per_s,eagain_retries,retries_per_commit,gaveup,errors,p50_us,p99_us,max_us,daemon_cpu_s,check,xenstore_cpu_s" > "$csv.new"
failed=0
for boot in $(seq 1 "$BOOTS"); do
    for side in ${SIDES:-stub cxen}; do
        log=$OUT/boot-$boot-$side.log
        if [ $side = stub ]; then store="domain:/guests/$(basename "$IMAGE")"; else store=daemon; fi
        echo "bench-xen: boot $boot of $BOOTS, $side ($(date -u '+%H:%M UTC'), log $log)"
        XEN=$XEN_ELF KERNEL=$DOM0_KERNEL INITRD=$OUT/initrd.cpio.gz TIMEOUT=900 \
        DOM0_ARGS="console=hvc0 earlyprintk=xen xenqemu.xenstore=$store XSDOM_TIMEOUT=30 BENCH_SIDE=$side BENCH_SECONDS=${BENCH_SECONDS:-5} BENCH_PIN=${PIN-apart}" \
            "$HARNESS/boot.sh" x86_64 "$log" || true
        lines=$(tr -d '\r' < "$log" | grep -a "^@@BENCH $side " || true)
        if [ "$(echo "$lines" | grep -c ',')" -ne 5 ] || ! grep -qa '^@@XENTEST PASS' "$log"; then
            echo "bench-xen: boot $boot ($side) did not give 5 results:"; echo "$lines"; grep -a 'Triple fault\|@@XENTEST FAIL' "$log" | head -3
            failed=1
        fi
        # "@@BENCH side workload CSV cpu": the CSV is everything between the third field and the last
        echo "$lines" | awk -v boot="$boot" '$1 == "@@BENCH" && $4 ~ /,/ {
            csv = $0; sub(/^@@BENCH [^ ]+ [^ ]+ /, "", csv); sub(/ [^ ]+$/, "", csv)
            printf "%s,%s,%s,%s,%s\n", boot, $2, $3, csv, $NF }' >> "$csv.new"
        # "@@PROFILE side workload name value name value ...": one row per phase
        # (C xenstored's boots have none)
        { tr -d '\r' < "$log" | grep -a "^@@PROFILE $side " || true; } | awk -v boot="$boot" '{
            for (i = 4; i + 1 <= NF; i += 2) printf "%s,%s,%s,%s\n", boot, $3, $i, $(i + 1) }' >> "$profile.new"
    done
done
mv "$csv.new" "$csv"
mv "$profile.new" "$profile"
case "${PIN-apart}" in
    apart) placement="dom0's vCPU pinned to physical CPU 0, the stub's to CPU 1 (PIN=apart)" ;;
    same) placement="dom0's and the stub's vCPUs both pinned to physical CPU 0 (PIN=same)" ;;
    *) placement="not pinned: Xen's scheduler placed the vCPUs" ;;
esac
PIN_PLACEMENT=$placement PROFILE_CSV=$profile python3 scripts/bench-xen-summary.py "$csv" "$commit$dirty" "$started" "$BOOTS" "$VARIANT" "$IMAGE" > "$RESULTS.md"
cat "$RESULTS.md"
exit $failed
