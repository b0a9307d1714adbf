#!/usr/bin/env bash
# Boots the PACKED (gzip) images of a pack or deployment under real Xen 4.17 in QEMU, through the unchanged
# scripts/test-xen.sh run in a scratch copy whose build/xenstore-stubdom-x86_64-<variant> is the .gz file
# (init-xenstore-domain recognises gzip by its magic, not by the name). Reuses build/xen-test's downloads,
# the harness in tools/xen-qemu and the guests of `make xsguest` (build/xsguest).
# Usage: scripts/test-xen-packed.sh DIR [pvh|pv ...]    (DIR holds manifest.json and images/)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/test-xen-packed.sh PACK_OR_REPO_DIR [pvh|pv ...]}; shift
variants=("${@:-pvh pv}"); variants=(${variants[*]})
root=$PWD
scratch=$(mktemp -d /tmp/xsd-xen.XXXXXX); trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/scripts" "$scratch/build/xen-test"
cp scripts/test-xen.sh scripts/test-xen-dom0.sh scripts/xl-guest-nodes.sh "$scratch/scripts/"
# Reuse the unpacked Xen and dom0 kernel if an earlier `make test-xen` fetched them.
[ -d build/xen-test/x ] && ln -s "$root/build/xen-test/x" "$scratch/build/xen-test/x"
[ -e build/xen-test/xen-4.17 ] && cp build/xen-test/xen-4.17 "$scratch/build/xen-test/"
ln -s "$root/tools" "$scratch/tools"
status=0
for variant in "${variants[@]}"; do
    gz="$dir/images/xenstore-stubdom-x86_64-$variant.gz"
    [ -e "$gz" ] || { echo "test-xen-packed: $gz missing" >&2; exit 2; }
    cp "$gz" "$scratch/build/xenstore-stubdom-x86_64-$variant"
    echo "test-xen-packed: booting $gz under Xen"
    if (cd "$scratch" && XSGUEST_DIR="$root/build/xsguest" scripts/test-xen.sh "$variant" | tail -n 3); then
        echo "test-xen-packed: $variant (gzip) PASS"
    else
        echo "test-xen-packed: $variant (gzip) FAIL"; status=1
    fi
done
exit $status
