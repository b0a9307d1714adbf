#!/usr/bin/env bash
# make-initramfs.sh: packs the harness's dom0 initramfs: busybox, the Xen toolstack with its libraries, the Xen driver modules, our /init and a test payload.
#
#   tools/xen-qemu/make-initramfs.sh SYSROOT KERNEL_ROOT KVER OUT.cpio.gz [PAYLOAD_DIR]
#     SYSROOT       where the dom0 userland comes from: / for x86_64 (the host's Debian packages), or a
#                   directory of unpacked armhf packages (tools/xen-qemu/fetch-arm.sh)
#     KERNEL_ROOT   an unpacked linux-image package (lib/modules/KVER/...)
#     PAYLOAD_DIR   copied over the root last: /test.sh, guests, xl configs, replacements
#
# Libraries are found by reading each binary's DT_NEEDED entries with readelf (not ldd, which cannot run
# foreign binaries) and looking the names up in SYSROOT's multiarch library directories, recursively.
set -euo pipefail
sysroot=$(cd "${1:?sysroot}" && pwd); kernel_root=${2:?kernel root}; kver=${3:?kernel version}
out=${4:?output file}; payload=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
xenbin=/usr/lib/xen-4.17/bin
sysroot=${sysroot%/}     # "/" becomes "", so "$sysroot$path" is the path itself

root=$(mktemp -d "${TMPDIR:-/tmp}/xenqemu-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,root,etc/xen,lib,usr/lib,var/lib/xen,var/lock,var/log/xen/console} \
    "$root$xenbin" "$root/lib/modules/$kver"
ln -s ../run "$root/var/run"

cp "$sysroot/bin/busybox" "$root/bin/busybox"      # static; /init installs its applet links
# the toolstack, from its versioned directory (Debian's /usr/sbin/xl is a wrapper that needs /sys/hypervisor)
for tool in xl xenstored xenconsoled xenconsole xen-init-dom0 xenstore-control init-xenstore-domain; do
    [ -e "$sysroot$xenbin/$tool" ] || continue       # init-xenstore-domain is x86-only
    cp "$sysroot$xenbin/$tool" "$root$xenbin/"
    ln -s "$xenbin/$tool" "$root/sbin/$tool"
done
for client in xenstore xenstore-read xenstore-write xenstore-ls xenstore-list xenstore-rm xenstore-exists \
              xenstore-chmod xenstore-watch; do
    [ -e "$sysroot/usr/bin/$client" ] && cp -P "$sysroot/usr/bin/$client" "$root/bin/"
done

libdirs=()
for dir in "$sysroot"/lib/*-linux-gnu* "$sysroot"/usr/lib/*-linux-gnu*; do
    [ -d "$dir" ] && libdirs+=("${dir#"$sysroot"}")
done
# lib_path NAME: the library's path inside the sysroot
lib_path() {
    local dir
    for dir in "${libdirs[@]}"; do [ -e "$sysroot$dir/$1" ] && { echo "$dir/$1"; return 0; }; done
    echo "make-initramfs: library $1 not found under $sysroot" >&2
    return 1
}
declare -A copied=()
# copy_with_needed FILE: the libraries FILE needs, and theirs, into the initramfs
copy_with_needed() {
    local name path
    for name in $(readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ -n "${copied[$name]:-}" ] && continue
        copied[$name]=1
        path=$(lib_path "$name")
        mkdir -p "$root$(dirname "$path")"
        cp -L "$sysroot$path" "$root$path"
        copy_with_needed "$sysroot$path"
    done
}
for binary in "$root$xenbin"/* "$root/bin/xenstore"; do
    [ -e "$binary" ] && copy_with_needed "$binary"
done
# glibc loads libgcc_s at run time (pthread_cancel; xl create aborts without it)
gcc_s=$(lib_path libgcc_s.so.1) && mkdir -p "$root$(dirname "$gcc_s")" && cp -L "$sysroot$gcc_s" "$root$gcc_s"
# the dynamic loader, at the path the binaries name as their interpreter
interpreter=$(readelf -l "$sysroot$xenbin/xl" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
mkdir -p "$root$(dirname "$interpreter")"
cp -L "$sysroot$(lib_path "$(basename "$interpreter")")" "$root$interpreter"

# the Xen drivers the toolstack needs; ARM's kernel has some of them built in
for module in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs/xenfs; do
    file=$kernel_root/lib/modules/$kver/kernel/drivers/xen/$module.ko
    [ -e "$file" ] && cp "$file" "$root/lib/modules/$kver/"
done

: > "$root/etc/xen/xl.conf"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
install -m 755 "$here/dom0-init.sh" "$root/init"
[ -z "$payload" ] || cp -a "$payload"/. "$root"/

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out"
echo "make-initramfs: $out ($(du -h "$out" | cut -f1))"
