#!/usr/bin/env bash
# Reproducibility check: two clean `make image` builds of the working tree's sources in two different directories
# (different path lengths, different times) must give byte-identical images. Exit 1 and a cmp report if not.
# Usage: scripts/repro-check.sh [WORKDIR]   (default: a fresh mktemp directory, removed afterwards)
#        ARCH=arm32 scripts/repro-check.sh    the same for the armv7 zImage and its ELF
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d /tmp/xsd-repro.XXXXXX)}"
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
a="$work/a"; b="$work/b/a/much/longer/path"
rm -rf "$a" "$work/b"; mkdir -p "$a" "$b"
# The working tree as the developer sees it (tracked + untracked, not ignored: no build/ or .build/), limited to
# what `make image` reads.
for dir in "$a" "$b"; do git ls-files -z --cached --others --exclude-standard -- Makefile mk Sources Runtime Linker | tar --ignore-failed-read --null -T - -cf - | tar -xf - -C "$dir"; done
echo "repro-check: clean build 1 in $a"
ARCH=${ARCH:-x86_64}
case $ARCH in
    arm32) images="xenstore-stubdom-arm32 xenstore-stubdom-arm32.elf" ;;
    *) images="xenstore-stubdom-x86_64-pvh xenstore-stubdom-x86_64-pv" ;;
esac
make -C "$a" --no-print-directory image ARCH="$ARCH" > "$work/build-a.log" 2>&1 || { cat "$work/build-a.log"; exit 1; }
sleep 1
echo "repro-check: clean build 2 in $b"
make -C "$b" --no-print-directory image ARCH="$ARCH" > "$work/build-b.log" 2>&1 || { cat "$work/build-b.log"; exit 1; }
status=0
for image in $images; do
    if cmp "$a/build/$image" "$b/build/$image"; then
        echo "repro-check: $image identical, sha256 $(sha256sum < "$a/build/$image" | cut -d' ' -f1)"
    else
        echo "repro-check: $image DIFFERS between the two builds"; status=1
    fi
done
[ $status -eq 0 ] && echo "repro-check: PASS" || echo "repro-check: FAIL"
exit $status
