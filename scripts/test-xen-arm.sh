#!/usr/bin/env bash
# Boots Debian's Xen 4.17 (armhf) + a Linux dom0 in qemu-system-arm -M virt,virtualization=on (TCG) and runs our
# arm32 zImage as a guest (xl create, kernel=) that serves the Xenstore protocol to dom0 clients over a vchan
# ring of its own and keeps its history on a virtual disk (scripts/test-xen-arm-dom0.sh: vchan-socket-proxy +
# xenstore-write/read/ls/rm/watch, then a restart of the image that must keep the history).
# Reuses the shared harness ../shared/xen-qemu (dom0-init.sh through arm/make-initramfs-arm.sh, and the QEMU
# command of arm/boot-xen-arm.sh). The armhf packages are fetched with apt-get through a private apt
# configuration under build/xen-test-arm/apt (the host's dpkg architectures stay untouched) and unpacked, not installed.
#
#   scripts/test-xen-arm.sh            (needs `make image ARCH=arm32` first; ~2-3 min under TCG)
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${XEN_HARNESS:-../shared/xen-qemu}
WORK=build/xen-test-arm
IMAGE=build/xenstore-stubdom-arm32
[ -e "$IMAGE" ] || { echo "test-xen-arm: $IMAGE missing, run make image ARCH=arm32" >&2; exit 2; }
[ -x "$HARNESS/arm/make-initramfs-arm.sh" ] || { echo "test-xen-arm: harness not found at $HARNESS" >&2; exit 2; }

need=()
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v cpio >/dev/null || need+=(cpio)
command -v readelf >/dev/null || need+=(binutils)
[ ${#need[@]} -eq 0 ] || scripts/install-packages.sh "${need[@]}"

# ---- armhf packages through a private apt configuration (armhf index of bookworm main only)
KVER=${KVER:-6.1.0-50-armmp-lpae}
PACKAGES="xen-hypervisor-4.17-armhf linux-image-$KVER busybox-static xen-utils-4.17 libxenmisc4.17 libxencall1
  libxendevicemodel1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenhypfs1 libxenstore4 libxentoolcore1
  libxentoollog1 libyajl2 libc6 libgcc-s1 liblzma5 libuuid1 zlib1g libzstd1 libfdt1 xenstore-utils libnl-3-200
  libnl-route-3-200"
A=$PWD/$WORK/apt
APT=(-o Dir::State="$A/state" -o Dir::State::status="$A/state/status" -o Dir::Cache="$A/cache"
     -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$A/etc/sources.list.d"
     -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts="$A/etc/preferences.d"
     -o APT::Architecture=armhf -o APT::Architectures::=armhf -o Debug::NoLocking=1)
if [ ! -e "$WORK/root/boot/xen-4.17-armhf" ] || [ ! -e "$WORK/sysroot/usr/lib/xen-4.17/bin/xl" ]; then
    mkdir -p "$A/state/lists/partial" "$A/cache/archives/partial" "$A/etc/sources.list.d" "$A/etc/preferences.d" \
        "$WORK/debs" "$WORK/root" "$WORK/sysroot"
    touch "$A/state/status"
    cat > "$A/etc/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Architectures: armhf
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    apt-get "${APT[@]}" -qq update
    (cd "$WORK/debs" && apt-get "${APT[@]}" -qq download $PACKAGES)
    for deb in "$WORK"/debs/*.deb; do
        case $deb in
            *xen-hypervisor*|*linux-image*) dpkg -x "$deb" "$WORK/root" ;;    # Xen and the dom0 kernel (+ modules)
            *) dpkg -x "$deb" "$WORK/sysroot" ;;                              # dom0 userland
        esac
    done
fi

# ---- dom0 initramfs: the harness's /init, our image, its xl config and the dom0 test
rm -rf "$WORK/payload" && mkdir -p "$WORK/payload/guests" "$WORK/payload/etc/xen"
cp "$IMAGE" "$WORK/payload/guests/xenstore-stubdom-arm32"
cp scripts/test-xen-arm-dom0.sh "$WORK/payload/test.sh"
# vchan-socket-proxy (dom0's end of our vchan), its library, and the xenstore client names the harness leaves out
mkdir -p "$WORK/payload/usr/lib/xen-4.17/bin" "$WORK/payload/usr/lib/arm-linux-gnueabihf" "$WORK/payload/sbin" "$WORK/payload/bin"
cp "$WORK/sysroot/usr/lib/xen-4.17/bin/vchan-socket-proxy" "$WORK/sysroot/usr/lib/xen-4.17/bin/test-xenstore" \
    "$WORK/payload/usr/lib/xen-4.17/bin/"
ln -sf /usr/lib/xen-4.17/bin/vchan-socket-proxy "$WORK/payload/sbin/vchan-socket-proxy"
cp -L "$WORK/sysroot/usr/lib/arm-linux-gnueabihf/libxenvchan.so.4.17" "$WORK/payload/usr/lib/arm-linux-gnueabihf/"
for name in xenstore-list xenstore-rm xenstore-watch xenstore-exists xenstore-chmod; do ln -sf xenstore "$WORK/payload/bin/$name"; done
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
"$HARNESS/arm/make-initramfs-arm.sh" "$WORK/sysroot" "$WORK/root" "$KVER" "$WORK/initrd.cpio.gz" "$WORK/payload" >/dev/null

# ---- boot (the command of arm/boot-xen-arm.sh, with our files)
LOG=$WORK/xen-arm.log
echo "test-xen-arm: booting Xen 4.17 armhf + dom0 (log: $LOG)"
set +e
timeout --foreground -k 5 "${TIMEOUT:-300}" qemu-system-arm -M virt,virtualization=on,highmem=off -cpu cortex-a15 \
    -smp 2 -m 2048 -nographic -no-reboot \
    -kernel "$WORK/root/boot/xen-4.17-armhf" \
    -append "dom0_mem=512M,max:512M dom0_max_vcpus=1 loglvl=all guest_loglvl=all" \
    -device guest-loader,addr=0x49000000,kernel="$WORK/root/boot/vmlinuz-$KVER",bootargs="console=hvc0 earlycon=xen ${DOM0_EXTRA:-}" \
    -device guest-loader,addr=0x50000000,initrd="$WORK/initrd.cpio.gz" \
    </dev/null 2>&1 | tr -d '\r' > "$LOG"
status=${PIPESTATUS[0]}
set -e
echo "test-xen-arm: QEMU exit status $status"
echo "---- dom0 test lines, harness markers, the image's console log (via xenconsoled) ----"
awk '/^---- \/var\/log\/xen\/console/ {show = 1} /^@@XENTEST/ {show = 0} show || /^@@/ || /^\(XEN\) .*d[1-9]/' "$LOG" | head -200
if grep -q 'SELFTEST: PASS' "$LOG" && grep -q '^@@XENTEST PASS' "$LOG"; then
    echo "test-xen-arm: PASS"
else
    echo "test-xen-arm: FAIL (see $LOG)"
    exit 1
fi
