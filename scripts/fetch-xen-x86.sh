# fetch-xen-x86.sh: sourced by scripts/test-xen.sh and scripts/test-xen-daemon.sh. Downloads Debian's
# Xen 4.17 hypervisor and dom0 kernel packages into $WORK (unpacked, not installed) once, and sets
# KVER (the kernel version) and XEN_ELF ($WORK/xen-4.17, the hypervisor as the ELF32 QEMU wants).
mkdir -p "$WORK/debs" "$WORK/x"
KVER=${KVER:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{sub("linux-image-","",$2); print $2; exit}')}
KVER=${KVER:-6.1.0-56-amd64}
if [ ! -e "$WORK/x/boot/xen-4.17-amd64.gz" ] || [ ! -e "$WORK/x/boot/vmlinuz-$KVER" ]; then
    (cd "$WORK/debs" && apt-get download xen-hypervisor-4.17-amd64 "linux-image-$KVER")
    for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$WORK/x"; done
fi
XEN_ELF=$WORK/xen-4.17
[ -e "$XEN_ELF" ] || zcat "$WORK/x/boot/xen-4.17-amd64.gz" > "$XEN_ELF"
