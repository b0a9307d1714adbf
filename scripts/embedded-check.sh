#!/usr/bin/env bash
# Compiles the core modules in Embedded Swift for x86_64 and armv7 bare metal: any use of
# Foundation, untyped throws or non-class existentials in the core fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFTC=${SWIFTC:-$(command -v swiftc)}
OUT=${OUT:-build/embedded-check}
FLAGS=(-enable-experimental-feature Embedded -wmo -Osize -parse-as-library -Xfrontend -disable-stack-protector)
# The core modules, in dependency order: one list (mk/core-modules.list) for this check, the
# image build and the fuzz build.
read -r -a CORE_MODULES < mk/core-modules.list
for triple in x86_64-unknown-none-elf armv7-none-none-eabi; do
    mkdir -p "$OUT/$triple"
    for module in "${CORE_MODULES[@]}"; do
        "$SWIFTC" -target "$triple" "${FLAGS[@]}" -module-name "$module" \
            -emit-module -emit-module-path "$OUT/$triple/$module.swiftmodule" -I "$OUT/$triple" \
            -c Sources/$module/*.swift -o "$OUT/$triple/$module.o"
    done
    echo "embedded-check: core compiles for $triple"
done
