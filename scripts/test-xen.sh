#!/usr/bin/env bash
# Boots real Xen 4.17 + a Linux dom0 in QEMU (TCG) and starts our stub-domain image with
# init-xenstore-domain, through the Xen-in-QEMU harness in tools/xen-qemu (docs/xen-qemu.md);
# everything it downloads or builds goes to build/xen-test.
#
#   scripts/test-xen.sh [pvh|pv]      (default pvh; needs `make image xsguest` first)
#   DOM0_EXTRA="XSDOM_PARAM=--selftest-trap" scripts/test-xen.sh pvh   (extra dom0 cmdline words;
#       this one gives the image --selftest-trap instead of its usual words, to see a crash report under Xen)
#   STUB_WORDS=--block   more words for the image's command line ("+" between words; scripts/soak-xen.sh)
#   XSTEST_QUICK=1   the dom0 test stops after the crash test and one guest (make test-xen's run without a disk)
# The image always gets --test-hooks: the dom0 test crashes it once on purpose (CONTROL test-crash)
# during a write storm with a guest connected and a watch set, and checks that it restarted in place.
#   XSTEST_SCRIPT=<dom0 script> XEN_LOG=<log>   another dom0 test and log (scripts/soak-xen.sh uses them)
#   QEMU_ACCEL=tcg   a host thread per emulated CPU instead of one for both (stalls now and then: docs/xen-qemu.md)
#   STUB_DISK=<host file> [STUB_DISK_RESUME=1]   the image boots with --block and gets that file (dom0's
#       /dev/vda) as its disk the operator's way; afterwards the host exports it with XENSTORED
#       --export-block and checks it with git. With STUB_DISK_RESUME=1 the file holds an earlier
#       boot's history, which the image must resume (make test-xen: PVH first, then PV on one file).
#       XSTEST_BENCH=1 adds xsbench runs through the stub before and after its disk connects. With a
#       disk the stub gets STUB_DISK_MEM MiB (default 32; 16 ran out of heap, see docs/stubdom.md).
#
# The image runs the core self-test, then serves dom0's ring; dom0 then runs scripts/test-xen-dom0.sh
# (xenstore-write/read/ls/rm, xl list, xl create of a PV guest, test-xenstore, xl create of a PVH guest). Pass = SELFTEST: PASS and the dom0 test passing. The PVH
# image's console also reaches Xen's console through port 0xE9 ("(dN) ..." lines); both images'
# PV console rings are logged by xenconsoled and printed at the end of the dom0 test.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT=${1:-pvh}
HARNESS=tools/xen-qemu
WORK=build/xen-test
IMAGE=build/xenstore-stubdom-x86_64-$VARIANT
GUESTS=${XSGUEST_DIR:-build/xsguest}
[ -e "$IMAGE" ] || { echo "test-xen: $IMAGE missing, run make image" >&2; exit 2; }
[ -e "$GUESTS/xsguest-pvh.elf" ] || { echo "test-xen: $GUESTS/xsguest-pvh.elf missing, run make xsguest" >&2; exit 2; }

# host tools the harness needs (Debian packages)
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /usr/lib/xen-4.17/bin/init-xenstore-domain ] || need+=(xen-utils-4.17)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
    echo "test-xen: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi

# Xen hypervisor and dom0 kernel from Debian packages (sets KVER, XEN_ELF, DOM0_KERNEL)
. "$HARNESS/fetch-x86.sh"

# dom0 initramfs with our image as /guests/<name>
rm -rf "$WORK/payload" && mkdir -p "$WORK/payload/guests"
cp "$IMAGE" "$WORK/payload/guests/"
cp "${XSTEST_SCRIPT:-scripts/test-xen-dom0.sh}" "$WORK/payload/test.sh"
cp scripts/xl-guest-nodes.sh "$WORK/payload/"   # the nodes xl writes per guest, sourced by test.sh
# the harness's tiny PV and PVH guests (xsguest mode=hello) and their xl configs, to check that guests
# can be created on top of us
mkdir -p "$WORK/payload/etc/xen"
cp "$GUESTS/xsguest.elf" "$GUESTS/xsguest-pvh.elf" "$WORK/payload/guests/"
cp "$HARNESS"/guests/tiny-pv.cfg "$HARNESS"/guests/tiny-pvh.cfg "$WORK/payload/etc/xen/"
# a guest that keeps writing through its ring while the stub is crashed and restarted (XSTEST_CRASH):
# one write every 50 ms, not mode=flood, whose load on the PVH stub (VM exits) came with dom0 processes
# dying of corrupted memory under QEMU's emulation (docs/stubdom.md, issue 15)
cat > "$WORK/payload/etc/xen/xsguest-tick.cfg" <<CFG
name    = "xsguest-tick"
type    = "pv"
kernel  = "/guests/xsguest.elf"
cmdline = "mode=tick"
memory  = 8
vcpus   = 1
on_poweroff = "destroy"
on_crash    = "destroy"
CFG
# the stub domain's disk: the operator's tool, and blkback and loop for dom0 (the harness's initramfs
# carries only the Xen driver modules)
mkdir -p "$WORK/payload/sbin" "$WORK/payload/lib/modules/$KVER"
cp tools/stubdom/xenstore-stubdom-disk "$WORK/payload/sbin/"
cp "$WORK/x/lib/modules/$KVER/kernel/drivers/block/loop.ko" \
   "$WORK/x/lib/modules/$KVER/kernel/drivers/block/xen-blkback/xen-blkback.ko" "$WORK/payload/lib/modules/$KVER/"
# STUB_DISK=<host file>: that file becomes dom0's /dev/vda (virtio) and the stub domain's disk, so
# its history outlives the boot: exported and checked with git here afterwards, and resumed by the
# next boot on the same file. The image then boots with --block.
disk_args=()
# The stub's own command line (init-xenstore-domain --param): test hooks, so that the dom0 test can
# crash it on purpose (CONTROL test-crash) and watch it restart in place.
stub_words=--test-hooks${STUB_WORDS:++$STUB_WORDS}   # STUB_WORDS: more words, "+" between them
if [ -n "${STUB_DISK:-}" ]; then
    for m in virtio/virtio.ko virtio/virtio_ring.ko virtio/virtio_pci_modern_dev.ko virtio/virtio_pci_legacy_dev.ko \
             virtio/virtio_pci.ko block/virtio_blk.ko; do
        cp "$WORK/x/lib/modules/$KVER/kernel/drivers/$m" "$WORK/payload/lib/modules/$KVER/"
    done
    [ -e "$STUB_DISK" ] || truncate -s 16M "$STUB_DISK"
    # 32 MiB, not the 16 of a stub without a disk: with 16, the PV stub resuming this disk ran out of
    # heap during the 100-guest step (docs/stubdom.md, "A stall explained"; Limitations)
    disk_args=(XSTEST_DISK=vda XSDOM_MEM=${STUB_DISK_MEM:-32} ${STUB_DISK_RESUME:+XSTEST_DISK_RESUME=1})
    # --test-crash-handshake: two crashes in the disk's handshake, each resumed (scripts/test-xen-dom0.sh)
    stub_words=--block+--test-crash-handshake+$stub_words
    # XSTEST_BENCH=1: the load generator of make bench in dom0 (libxenstore), for the numbers with the
    # disk and without (docs/stubdom.md, Measured). Not by default: its history on the disk pushes the
    # 16 MiB PV stub towards its heap's end later in the test (docs/stubdom.md, Limitations).
    if [ -n "${XSTEST_BENCH:-}" ]; then
        mkdir -p "$WORK/payload/usr/bin"
        gcc -O2 -Wall -o "$WORK/payload/usr/bin/xsbench" bench/xsbench.c -lxenstore
    fi
fi
# Xen's own conformance test (libxenstore is already in the initramfs for the xenstore-* tools)
mkdir -p "$WORK/payload/usr/lib/xen-4.17/bin"
cp /usr/lib/xen-4.17/bin/test-xenstore "$WORK/payload/usr/lib/xen-4.17/bin/"
"$HARNESS/make-initramfs.sh" / "$WORK/x" "$KVER" "$WORK/initrd.cpio.gz" "$WORK/payload" >/dev/null

LOG=${XEN_LOG:-$WORK/xen-$VARIANT.log}
rm -f "$LOG" "$WORK/boot-ended" "$WORK/stalled"
# With a disk: once dom0 reports the stub's live head (@@XS live-head), the host exports the disk
# while the stub keeps writing it (the dom0 test goes on), as an operator copies a disk in use.
XENSTORED=${XENSTORED:-.build/debug/xenstored}
live_pid=
if [ -n "${STUB_DISK:-}" ]; then
    rm -rf "$WORK/live-history" "$WORK/live-history.log"
    ( until grep -qa '^@@XS live-head [0-9a-f]' "$LOG" 2>/dev/null; do [ -e "$WORK/boot-ended" ] && exit 0; sleep 0.5; done
      "$XENSTORED" --export-block "$STUB_DISK" --to "$WORK/live-history" > "$WORK/live-history.log" 2>&1
      echo "exit status $?" >> "$WORK/live-history.log" ) &
    live_pid=$!
fi
# Stall watch: when the console stays silent for STALL_SECONDS (default 180; the dom0 test prints at
# least every minute), type to Xen through the serial input (three CTRL-a, then 'q' domains and
# vCPUs, 'e' event channels, 'r' run queues, 'd' registers), so the log shows where the machine waits,
# then ask QEMU's monitor for its CPUs' state and registers, and end QEMU rather than wait for the timeout.
# QEMU's monitor, by an absolute path: it also names this boot's QEMU among others (two soaks at once)
MONITOR_SOCK=$(cd "$WORK" && pwd)/qemu-monitor.sock
rm -f "$WORK/serial-in"
mkfifo "$WORK/serial-in"
exec 9<>"$WORK/serial-in"   # held open: QEMU's console input never sees end of file
( last=-1; quiet=0
  until [ -e "$WORK/boot-ended" ]; do
      sleep 5
      size=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
      if [ "$size" != "$last" ]; then last=$size; quiet=0; continue; fi
      quiet=$((quiet + 5))
      [ $quiet -ge "${STALL_SECONDS:-180}" ] || continue
      echo "test-xen: the console was silent for $quiet s: asking Xen for dumps (q e r d), then ending QEMU"
      echo "$quiet" > "$WORK/stalled"   # a failure even if the keys below wake the machine up again
      printf '\001\001\001' >&9; sleep 2
      for key in q e r d; do printf '%s' "$key" >&9; sleep 5; done
      sleep 10
      # and ask QEMU itself whether its CPUs run or halt, and where (Xen may no longer answer keys)
      python3 - "$MONITOR_SOCK" <<'PY' | tr -d '\r' | grep -a -v '^(qemu)' | sed 's/^/test-xen: qemu monitor: /' | head -80 || true
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    for command in (b"info status\n", b"info cpus\n", b"info registers -a\n"):
        s.sendall(command)
        time.sleep(1)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    sys.stdout.write(out.decode("utf-8", "replace"))
except OSError as error:
    print("no monitor:", error)
PY
      pkill -f -- "-monitor unix:$MONITOR_SOCK," || true   # this boot's QEMU only
      break
  done ) &
stall_pid=$!
echo "test-xen: booting Xen + dom0 with xenqemu.xenstore=domain:/guests/$(basename "$IMAGE") (log: $LOG)"
status=0
rm -f "$MONITOR_SOCK"
# Both emulated CPUs in one host thread: with a thread each (QEMU's default), now and then a wake-up
# is lost and the whole machine stops (docs/xen-qemu.md, "Stalls with two emulated CPUs").
QEMU_ACCEL=${QEMU_ACCEL:-tcg,thread=single} XEN=$XEN_ELF KERNEL=$DOM0_KERNEL INITRD=$WORK/initrd.cpio.gz TIMEOUT=${TIMEOUT:-900} QEMU_STDIN=$WORK/serial-in \
QEMU_MONITOR=$MONITOR_SOCK \
QEMU_EXTRA="${STUB_DISK:+-drive file=$STUB_DISK,if=virtio,format=raw}" \
DOM0_ARGS="console=hvc0 earlyprintk=xen xenqemu.xenstore=domain:/guests/$(basename "$IMAGE") XSDOM_TIMEOUT=${XSDOM_TIMEOUT:-15} XSDOM_PARAM=$stub_words XSTEST_CRASH=1 ${disk_args[*]} ${XSTEST_QUICK:+XSTEST_QUICK=1} ${DOM0_EXTRA:-}" \
    "$HARNESS/boot.sh" x86_64 "$LOG" || status=$?
echo "test-xen: QEMU exit status $status"
touch "$WORK/boot-ended"; wait "$stall_pid" || true
exec 9>&-
# boot-to-first-reply: init-xenstore-domain builds the domain, starts it and returns once dom0's
# first request through it succeeded (dom0-init.sh prints @@T <uptime> <event> around it)
awk '/^@@T .* modules loaded/ {a = $2} /^@@T .* xenstore domain up/ {b = $2}
     END {if (a != "" && b != "") printf "test-xen: init-xenstore-domain to first reply: %.2f s\n", b - a}' "$LOG"
grep '^@@XS info' "$LOG" | sed 's/^@@XS info /test-xen: /' || true
# xsbench through the stub, before its disk connected (memory) and after (disk); CSV columns in bench/xsbench.c
tr -d '\r' < "$LOG" | awk -F, '/^@@XS bench [a-z]+ stub-/ {
    split($1, head, " "); label = head[3]
    if ($2 == "write") printf "test-xen: bench %-6s write, 1 client: %s ops/s, p50 %.2f ms, p99 %.2f ms\n", label, $8, $15 / 1000, $16 / 1000
    else printf "test-xen: bench %-6s vmstart, %s client(s), 40 writes: %s commits/s, %s EAGAIN per commit, p99 %.1f ms\n", label, $3, $10, $12, $16 / 1000
}' || true
echo "---- Xen console lines of the stub domain, harness markers, and its PV console log (via xenconsoled) ----"
awk '/^---- \/var\/log\/xen\/console/ {show = 1} /^@@XENTEST/ {show = 0}
     show || /^\(d[1-9][0-9]*\)/ || /^@@X/ || /init-xenstore-domain/ || /^xc: error/ || /Triple fault|domain_crash/' "$LOG" | head -150 || true   # head may close the pipe before awk is done (pipefail)
# what decides the verdict, wherever it lies in the log (the listing above is cut at 150 lines)
echo "---- failed checks, the dom0 test's verdict, crashes (the stub's, and dom0 processes': docs/xen-qemu.md) ----"
grep -a -E '^@@XS FAIL|^@@XENTEST|Triple fault|domain_crash|FATAL|SELFTEST|segfault at|Inconsistency detected' "$LOG" | tr -d '\r' | head -60 || true
# The disk's history, out of the stub: exported by the host daemon, read by real git.
history_ok=1
if [ -n "${STUB_DISK:-}" ]; then
    wait "$live_pid" || true
    # the export taken while the stub ran: complete, and holding the head dom0 was told of, same id
    live_head=$(grep -a '^@@XS live-head ' "$LOG" | head -1 | tr -d '\r' | awk '{ print $3 }')
    if [ -z "$live_head" ] && [ -n "${XSTEST_SCRIPT:-}" ]; then
        echo "test-xen: no export while the stub ran ($XSTEST_SCRIPT reports no @@XS live-head)"
    elif [ -z "$live_head" ]; then
        echo "test-xen: dom0 reported no live head (@@XS live-head)"; history_ok=0
    elif ! grep -q '^exit status 0$' "$WORK/live-history.log" 2>/dev/null; then
        echo "test-xen: the export while the stub ran failed: $(tail -3 "$WORK/live-history.log" 2>/dev/null)"; history_ok=0
    elif ! git -C "$WORK/live-history" merge-base --is-ancestor "$live_head" main 2>/dev/null; then
        echo "test-xen: the live export lacks the head $live_head xenstore-control reported"; history_ok=0
    elif ! git -C "$WORK/live-history" fsck --strict > /dev/null 2>&1; then
        echo "test-xen: git fsck --strict failed on the live export"; history_ok=0
    else
        echo "test-xen: exported while the stub ran: $(git -C "$WORK/live-history" rev-list --count main) commits, head" \
             "$(git -C "$WORK/live-history" rev-parse --short main); it holds $live_head, the head xenstore-control reported, by that id"
    fi
    rm -rf "$WORK/stub-history"
    if "$XENSTORED" --export-block "$STUB_DISK" --to "$WORK/stub-history" > "$WORK/stub-history.log" 2>&1; then
        commits=$(git -C "$WORK/stub-history" rev-list --count main)
        first_parent=$(git -C "$WORK/stub-history" rev-list --first-parent --count main)
        dom0=$(git -C "$WORK/stub-history" log --oneline --grep '^Domain 0: ' main | wc -l)
        squashed=""; [ -e "$WORK/stub-history/.git/shallow" ] && squashed="; older ones squashed"
        echo "test-xen: the stub's disk exported to $WORK/stub-history: $commits commits ($first_parent on the first-parent line$squashed), $dom0 by Domain 0"
        git -C "$WORK/stub-history" log -n 3 --first-parent --format='test-xen:   %h %s' main
        [ "$dom0" -ge 1 ] || { echo "test-xen: expected Domain 0 commits on the disk"; history_ok=0; }
        git -C "$WORK/stub-history" fsck --strict > /dev/null 2>&1 || { echo "test-xen: git fsck --strict failed on the export"; history_ok=0; }
        # the live export's head is a commit of the final history (unless squashed away since)
        live_main=$(git -C "$WORK/live-history" rev-parse main 2>/dev/null || true)
        if [ -n "$live_main" ] && [ ! -e "$WORK/stub-history/.git/shallow" ] \
           && ! git -C "$WORK/stub-history" merge-base --is-ancestor "$live_main" main 2>/dev/null; then
            echo "test-xen: the live export's head $live_main is not in the final history"; history_ok=0
        fi
    else
        echo "test-xen: --export-block failed: $(tail -3 "$WORK/stub-history.log")"; history_ok=0
    fi
fi
stalled_ok=1
if [ -e "$WORK/stalled" ]; then
    # The emulated machine stopped: every CPU idle while a vCPU was runnable (docs/xen-qemu.md, "Stalls with two emulated CPUs").
    # Typing to Xen for its dumps can wake it, so a test that then finished still fails here.
    echo "test-xen: the machine stalled: its console was silent for $(cat "$WORK/stalled") s (dumps above)"; stalled_ok=0
fi
if [ $history_ok -eq 1 ] && [ $stalled_ok -eq 1 ] && grep -q 'SELFTEST: PASS' "$LOG" && grep -q '^@@XENTEST PASS' "$LOG"; then
    echo "test-xen: $VARIANT image: self-test passed and dom0 used Xenstore through it: PASS"
else
    echo "---- the log's last 80 lines ----"
    tail -n 80 "$LOG" | tr -d '\r'
    echo "test-xen: $VARIANT image: FAIL (see $LOG)"
    exit 1
fi
