#!/usr/bin/env bash
# Boots real Xen 4.17 + a Linux dom0 in QEMU (TCG) and starts our stub-domain image with
# init-xenstore-domain, through the Xen-in-QEMU harness in tools/xen-qemu (docs/xen-qemu.md);
# everything it downloads or builds goes to build/xen-test.
#
#   scripts/test-xen.sh [pvh|pv]      (default pvh; needs `make image xsguest` first)
#   DOM0_EXTRA="XSDOM_ARGS=--param=--selftest-trap" scripts/test-xen.sh pvh   (extra dom0 cmdline words;
#       this one passes --selftest-trap to the image to see a crash report under Xen)
#   XSTEST_SCRIPT=<dom0 script> XEN_LOG=<log>   another dom0 test and log (scripts/soak-xen.sh uses them)
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
# the harness's tiny PV and PVH guests (xsguest mode=hello) and their xl configs, to check that guests
# can be created on top of us
mkdir -p "$WORK/payload/etc/xen"
cp "$GUESTS/xsguest.elf" "$GUESTS/xsguest-pvh.elf" "$WORK/payload/guests/"
cp "$HARNESS"/guests/tiny-pv.cfg "$HARNESS"/guests/tiny-pvh.cfg "$WORK/payload/etc/xen/"
# Xen's own conformance test (libxenstore is already in the initramfs for the xenstore-* tools)
mkdir -p "$WORK/payload/usr/lib/xen-4.17/bin"
cp /usr/lib/xen-4.17/bin/test-xenstore "$WORK/payload/usr/lib/xen-4.17/bin/"
"$HARNESS/make-initramfs.sh" / "$WORK/x" "$KVER" "$WORK/initrd.cpio.gz" "$WORK/payload" >/dev/null

LOG=${XEN_LOG:-$WORK/xen-$VARIANT.log}
echo "test-xen: booting Xen + dom0 with xenqemu.xenstore=domain:/guests/$(basename "$IMAGE") (log: $LOG)"
status=0
XEN=$XEN_ELF KERNEL=$DOM0_KERNEL INITRD=$WORK/initrd.cpio.gz TIMEOUT=${TIMEOUT:-900} \
DOM0_ARGS="console=hvc0 earlyprintk=xen xenqemu.xenstore=domain:/guests/$(basename "$IMAGE") XSDOM_TIMEOUT=${XSDOM_TIMEOUT:-15} ${DOM0_EXTRA:-}" \
    "$HARNESS/boot.sh" x86_64 "$LOG" || status=$?
echo "test-xen: QEMU exit status $status"
# boot-to-first-reply: init-xenstore-domain builds the domain, starts it and returns once dom0's
# first request through it succeeded (dom0-init.sh prints @@T <uptime> <event> around it)
awk '/^@@T .* modules loaded/ {a = $2} /^@@T .* xenstore domain up/ {b = $2}
     END {if (a != "" && b != "") printf "test-xen: init-xenstore-domain to first reply: %.2f s\n", b - a}' "$LOG"
grep '^@@XS info' "$LOG" | sed 's/^@@XS info /test-xen: /' || true
echo "---- Xen console lines of the stub domain, harness markers, and its PV console log (via xenconsoled) ----"
awk '/^---- \/var\/log\/xen\/console/ {show = 1} /^@@XENTEST/ {show = 0}
     show || /^\(d[1-9][0-9]*\)/ || /^@@X/ || /init-xenstore-domain/ || /^xc: error/ || /Triple fault|domain_crash/' "$LOG" | head -150 || true   # head may close the pipe before awk is done (pipefail)
if grep -q 'SELFTEST: PASS' "$LOG" && grep -q '^@@XENTEST PASS' "$LOG"; then
    echo "test-xen: $VARIANT image: self-test passed and dom0 used Xenstore through it: PASS"
else
    echo "test-xen: $VARIANT image: FAIL (see $LOG)"
    exit 1
fi
