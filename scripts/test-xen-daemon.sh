#!/usr/bin/env bash
# Boots real Xen 4.17 + a Linux dom0 in QEMU (TCG) with OUR daemon as dom0's xenstored
# (`xenstored --xen`, replacing C xenstored), through the Xen-in-QEMU harness in tools/xen-qemu
# (docs/xen-qemu.md): its /init runs /usr/lib/xen-4.17/bin/xenstored, which the payload replaces with
# scripts/xen-dom0-xenstored.sh; then xen-init-dom0, xenconsoled and scripts/test-xen-daemon-dom0.sh.
#
#   scripts/test-xen-daemon.sh BINARY XSGUEST-PV XSGUEST-PVH   (make test-xen-dom0 builds them)
#   DAEMON=c scripts/test-xen-daemon.sh ...   the same test with Debian's C xenstored as dom0's
#       xenstored, for comparison (checks of our daemon's log and history then fail, of course)
#   SMP=2 ...                                 two QEMU CPUs (default 1; see docs/dom0.md on freezes)
#
# Pass = every "@@XS" check ok and "@@XENTEST PASS". Everything goes to build/xen-test.
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY=${1:?xenstored binary (swift build -c release --static-swift-stdlib)}
XSGUEST=${2:?xsguest.elf}
XSGUEST_PVH=${3:?xsguest-pvh.elf}
HARNESS=tools/xen-qemu
WORK=build/xen-test

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /usr/lib/xen-4.17/bin/xenstored ] || need+=(xen-utils-4.17)
command -v xenstore-read >/dev/null || need+=(xenstore-utils)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
[ ${#need[@]} -eq 0 ] || scripts/install-packages.sh "${need[@]}"

# Xen hypervisor and dom0 kernel from Debian packages (sets KVER, XEN_ELF, DOM0_KERNEL)
. "$HARNESS/fetch-x86.sh"

# payload: our daemon and the shared libraries it still needs (glibc, libstdc++, zlib, Xen's),
# the stand-in for C xenstored, the dom0 test, the guests and their xl configs
P=$WORK/payload-dom0
rm -rf "$P" && mkdir -p "$P/usr/sbin" "$P/usr/lib/xen-4.17/bin" "$P/guests" "$P/etc/xen"
cp "$BINARY" "$P/usr/sbin/xenstored-swift"
ldd "$BINARY" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$P$(dirname "$lib")"; cp -L "$lib" "$P$lib"
done
[ "${DAEMON:-ours}" = c ] || cp scripts/xen-dom0-xenstored.sh "$P/usr/lib/xen-4.17/bin/xenstored"
cp scripts/test-xen-daemon-dom0.sh "$P/test.sh"
cp "$XSGUEST" "$P/guests/xsguest.elf"
cp "$XSGUEST_PVH" "$P/guests/xsguest-pvh.elf"
cat > "$P/etc/xen/xsguest-pvh.cfg" <<CFG
name    = "xsguest-pvh"
type    = "pvh"
kernel  = "/guests/xsguest-pvh.elf"
cmdline = "mode=good"
memory  = 16
vcpus   = 1
on_poweroff = "destroy"
on_crash    = "destroy"
CFG
for mode in good flood badidx huge; do
    cat > "$P/etc/xen/xsguest-$mode.cfg" <<CFG
name    = "xsguest-$mode"
type    = "pv"
kernel  = "/guests/xsguest.elf"
cmdline = "mode=$mode"
memory  = 8
vcpus   = 1
on_poweroff = "destroy"
on_crash    = "destroy"
CFG
done
# the harness's tiny PV and PVH guests: the same two kernels with mode=hello
cp "$HARNESS"/guests/tiny-pv.cfg "$HARNESS"/guests/tiny-pvh.cfg "$P/etc/xen/"
"$HARNESS/make-initramfs.sh" / "$WORK/x" "$KVER" "$WORK/initrd-dom0.cpio.gz" "$P" >/dev/null

LOG=$WORK/xen-dom0-daemon.log
echo "test-xen-dom0: booting Xen + dom0 with $([ "${DAEMON:-ours}" = c ] && echo "C xenstored (DAEMON=c)" || echo "our xenstored --xen") as dom0's xenstored (log: $LOG)"
started=$(date +%s)
status=0
SMP=${SMP:-1} XEN=$XEN_ELF KERNEL=$DOM0_KERNEL INITRD=$WORK/initrd-dom0.cpio.gz TIMEOUT=${TIMEOUT:-240} \
DOM0_ARGS="console=hvc0 earlyprintk=xen xenqemu.xenstore=daemon ${DOM0_EXTRA:-}" \
    "$HARNESS/boot.sh" x86_64 "$LOG" || status=$?
echo "test-xen-dom0: QEMU exit status $status after $(( $(date +%s) - started )) s"
awk '/^==== / || /^@@XS/ || /^@@XENTEST/ || /^xsguest:/ || /^---- / || /^xenstored:/ || /xenstored-swift/' "$LOG" | head -250
if grep -q '^@@XENTEST PASS' "$LOG" && ! grep -q '^@@XS FAIL' "$LOG"; then
    echo "test-xen-dom0: our daemon served dom0 and its guests under real Xen: PASS ($(grep -c '^@@XS ok' "$LOG") checks)"
else
    echo "test-xen-dom0: FAIL (see $LOG)"
    exit 1
fi
