# fetch-x86.sh: sourced by the x86 Xen tests; downloads Debian's Xen 4.17 hypervisor and dom0 kernel once into $WORK and names them.
#
# Needs WORK (the cache directory, e.g. build/xen-test). The packages xen-hypervisor-4.17-amd64 and
# linux-image-KVER (the version behind Debian's linux-image-amd64, or KVER=... to choose) are fetched
# with `apt-get download` into $WORK/debs and unpacked (dpkg -x, not installed) into $WORK/x; nothing is
# fetched again while $WORK/x has both. Sets:
#   KVER           the dom0 kernel's version (its modules are in $WORK/x/lib/modules/$KVER)
#   XEN_ELF        $WORK/xen-4.17: xen.gz decompressed, the 32-bit multiboot ELF that QEMU's -kernel loads
#   DOM0_KERNEL    $WORK/x/boot/vmlinuz-$KVER (Xen decompresses it itself)
mkdir -p "$WORK/debs" "$WORK/x"
KVER=${KVER:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')}
KVER=${KVER:-6.1.0-56-amd64}
if [ ! -e "$WORK/x/boot/xen-4.17-amd64.gz" ] || [ ! -e "$WORK/x/boot/vmlinuz-$KVER" ]; then
    (cd "$WORK/debs" && apt-get download xen-hypervisor-4.17-amd64 "linux-image-$KVER")
    for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$WORK/x"; done
fi
XEN_ELF=$WORK/xen-4.17
[ -e "$XEN_ELF" ] || zcat "$WORK/x/boot/xen-4.17-amd64.gz" > "$XEN_ELF"
DOM0_KERNEL=$WORK/x/boot/vmlinuz-$KVER
