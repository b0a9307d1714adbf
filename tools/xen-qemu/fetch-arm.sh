# fetch-arm.sh: sourced by the ARM Xen test; downloads Debian's armhf Xen 4.17, dom0 kernel and dom0 userland once into $WORK.
#
# Needs WORK (the cache directory, e.g. build/xen-test-arm). The armhf packages come from bookworm main
# through a private apt configuration in $WORK/apt (its own sources, lists and cache; the host's dpkg
# architectures and apt state stay untouched) and are unpacked, never installed:
#   $WORK/root      xen-hypervisor-4.17-armhf and linux-image-KVER (boot/ and lib/modules/)
#   $WORK/sysroot   the dom0 userland: busybox-static, xen-utils-4.17, xenstore-utils and their libraries
# Nothing is fetched again while both are there. Sets KVER (default 6.1.0-50-armmp-lpae; KVER=... to
# choose), XEN_ELF ($WORK/root/boot/xen-4.17-armhf) and DOM0_KERNEL ($WORK/root/boot/vmlinuz-$KVER).
KVER=${KVER:-6.1.0-50-armmp-lpae}
arm_packages="xen-hypervisor-4.17-armhf linux-image-$KVER busybox-static xen-utils-4.17 xenstore-utils
  libxenmisc4.17 libxencall1 libxendevicemodel1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenhypfs1
  libxenstore4 libxentoolcore1 libxentoollog1 libyajl2 libc6 libgcc-s1 liblzma5 libuuid1 zlib1g libzstd1 libfdt1
  libnl-3-200 libnl-route-3-200"
arm_apt_dir=$PWD/$WORK/apt
arm_apt=(-o Dir::State="$arm_apt_dir/state" -o Dir::State::status="$arm_apt_dir/state/status"
    -o Dir::Cache="$arm_apt_dir/cache" -o Dir::Etc::SourceList=/dev/null
    -o Dir::Etc::SourceParts="$arm_apt_dir/sources.list.d" -o Dir::Etc::Preferences=/dev/null
    -o Dir::Etc::PreferencesParts="$arm_apt_dir/preferences.d" -o APT::Architecture=armhf
    -o APT::Architectures::=armhf -o Debug::NoLocking=1)
if [ ! -e "$WORK/root/boot/xen-4.17-armhf" ] || [ ! -e "$WORK/sysroot/usr/lib/xen-4.17/bin/xl" ]; then
    mkdir -p "$arm_apt_dir/state/lists/partial" "$arm_apt_dir/cache/archives/partial" \
        "$arm_apt_dir/sources.list.d" "$arm_apt_dir/preferences.d" "$WORK/debs" "$WORK/root" "$WORK/sysroot"
    touch "$arm_apt_dir/state/status"
    printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm" "Components: main" \
        "Architectures: armhf" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" \
        > "$arm_apt_dir/sources.list.d/debian.sources"
    apt-get "${arm_apt[@]}" -qq update
    (cd "$WORK/debs" && apt-get "${arm_apt[@]}" -qq download $arm_packages)
    for deb in "$WORK"/debs/*.deb; do
        case $deb in
            */xen-hypervisor-*|*/linux-image-*) dpkg -x "$deb" "$WORK/root" ;;
            *) dpkg -x "$deb" "$WORK/sysroot" ;;
        esac
    done
fi
XEN_ELF=$WORK/root/boot/xen-4.17-armhf
DOM0_KERNEL=$WORK/root/boot/vmlinuz-$KVER
