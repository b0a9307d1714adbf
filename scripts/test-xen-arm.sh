#!/usr/bin/env bash
# Boots Debian's Xen 4.17 (armhf) + a Linux dom0 in qemu-system-arm -M virt,virtualization=on (TCG) and runs our
# arm32 zImage as a guest (xl create, kernel=) that serves the Xenstore protocol to dom0 clients over a vchan
# ring of its own and keeps its history on a virtual disk (scripts/test-xen-arm-dom0.sh: vchan-socket-proxy +
# xenstore-write/read/ls/rm/watch, then a restart of the image that must keep the history).
# Through the Xen-in-QEMU harness in tools/xen-qemu (docs/xen-qemu.md): fetch-arm.sh downloads the armhf packages
# into build/xen-test-arm (a private apt configuration; the host's dpkg architectures stay untouched),
# make-initramfs.sh packs dom0's initramfs, boot.sh arm32 boots it.
#
#   scripts/test-xen-arm.sh            (needs `make image ARCH=arm32` first; ~2-3 min under TCG)
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=tools/xen-qemu
WORK=build/xen-test-arm
IMAGE=build/xenstore-stubdom-arm32
[ -e "$IMAGE" ] || { echo "test-xen-arm: $IMAGE missing, run make image ARCH=arm32" >&2; exit 2; }

need=()
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v cpio >/dev/null || need+=(cpio)
command -v readelf >/dev/null || need+=(binutils)
[ ${#need[@]} -eq 0 ] || scripts/install-packages.sh "${need[@]}"

# ---- armhf Xen, dom0 kernel and dom0 userland (sets KVER, XEN_ELF, DOM0_KERNEL)
. "$HARNESS/fetch-arm.sh"

# ---- dom0 initramfs: the harness's userland and /init, our image, its xl config and the dom0 test
rm -rf "$WORK/payload" && mkdir -p "$WORK/payload/guests" "$WORK/payload/etc/xen"
cp "$IMAGE" "$WORK/payload/guests/xenstore-stubdom-arm32"
cp scripts/test-xen-arm-dom0.sh "$WORK/payload/test.sh"
# vchan-socket-proxy (dom0's end of our vchan), its library, and Xen's conformance test
mkdir -p "$WORK/payload/usr/lib/xen-4.17/bin" "$WORK/payload/usr/lib/arm-linux-gnueabihf" "$WORK/payload/sbin" "$WORK/payload/bin"
cp "$WORK/sysroot/usr/lib/xen-4.17/bin/vchan-socket-proxy" "$WORK/sysroot/usr/lib/xen-4.17/bin/test-xenstore" \
    "$WORK/payload/usr/lib/xen-4.17/bin/"
ln -sf /usr/lib/xen-4.17/bin/vchan-socket-proxy "$WORK/payload/sbin/vchan-socket-proxy"
cp -L "$WORK/sysroot/usr/lib/arm-linux-gnueabihf/libxenvchan.so.4.17" "$WORK/payload/usr/lib/arm-linux-gnueabihf/"
# the image's disk: a loop device in dom0 served by blkback
mkdir -p "$WORK/payload/lib/modules/$KVER"
cp "$WORK/root/lib/modules/$KVER/kernel/drivers/block/loop.ko" \
   "$WORK/root/lib/modules/$KVER/kernel/drivers/block/xen-blkback/xen-blkback.ko" "$WORK/payload/lib/modules/$KVER/"
cat > "$WORK/payload/etc/xen/xenstore-arm.cfg" <<CFG
# Our arm32 image as an ordinary guest: ARM guests are always "pvh"-style; kernel= takes the zImage.
name = "xenstore-arm"
type = "pvh"
kernel = "/guests/xenstore-stubdom-arm32"
extra = "--vchan --block"
memory = 32
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
CFG
"$HARNESS/make-initramfs.sh" "$WORK/sysroot" "$WORK/root" "$KVER" "$WORK/initrd.cpio.gz" "$WORK/payload" >/dev/null

# ---- boot
LOG=$WORK/xen-arm.log
echo "test-xen-arm: booting Xen 4.17 armhf + dom0 (log: $LOG)"
status=0
XEN=$XEN_ELF KERNEL=$DOM0_KERNEL INITRD=$WORK/initrd.cpio.gz TIMEOUT=${TIMEOUT:-300} \
DOM0_ARGS="console=hvc0 earlycon=xen ${DOM0_EXTRA:-}" "$HARNESS/boot.sh" arm32 "$LOG" || status=$?
echo "test-xen-arm: QEMU exit status $status"
echo "---- dom0 test lines, harness markers, the image's console log (via xenconsoled) ----"
awk '/^---- \/var\/log\/xen\/console/ {show = 1} /^@@XENTEST/ {show = 0} show || /^@@/ || /^\(XEN\) .*d[1-9]/' "$LOG" | head -200
if grep -q 'SELFTEST: PASS' "$LOG" && grep -q '^@@XENTEST PASS' "$LOG"; then
    echo "test-xen-arm: PASS"
else
    echo "test-xen-arm: FAIL (see $LOG)"
    exit 1
fi
