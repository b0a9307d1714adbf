#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in Fuzz/ (wire, server, ring) against the core sources.
#
#   scripts/fuzz.sh build TARGET          compile build/fuzz/TARGET (only if a source changed)
#   scripts/fuzz.sh run TARGET SECONDS    build, generate seeds, fuzz for SECONDS; a crash leaves
#                                         build/fuzz/artifacts/TARGET-crash-* and exits non-zero
#   scripts/fuzz.sh replay TARGET FILE... run the target once on each FILE (e.g. a crash artifact)
#
# Each target is compiled as ONE Swift module together with the core sources it needs (the core's
# `import XenstoreWire` etc. resolve to empty shim modules, as in mk/image.mk), with
# -sanitize=fuzzer,address; so the target may also check internal state of the server.
# The corpus grows in build/fuzz/corpus/TARGET and seeds are generated into build/fuzz/seeds/TARGET
# (neither is committed); a directory Fuzz/seeds/TARGET, if present, is used as extra seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFTC=${SWIFTC:-$(command -v swiftc)}
OUT=${FUZZ_OUT:-build/fuzz}
# Swift's own crash backtracer waits for a long time inside a fuzzer; libFuzzer/ASan report the crash.
export SWIFT_BACKTRACE=enable=no
mode=${1:?usage: fuzz.sh build|run|replay TARGET [SECONDS|FILE...]}
target=${2:?target: wire, server or ring}

# A target needs the core modules (mk/core-modules.list, dependency order) up to its last one.
read -r -a CORE_MODULES < mk/core-modules.list
case "$target" in
    wire)   main=Fuzz/WireDecoder.swift;   last=XenstoreWire ;;
    server) main=Fuzz/ServerMachine.swift; last=XenstoreServer ;;
    ring)   main=Fuzz/RingIndexes.swift;   last=XenstoreRing ;;
    *) echo "fuzz.sh: unknown target '$target' (wire, server, ring)" >&2; exit 2 ;;
esac
modules=()
for module in "${CORE_MODULES[@]}"; do modules+=("$module"); [[ $module == "$last" ]] && break; done
[[ -f $main ]] || { echo "fuzz.sh: $main does not exist" >&2; exit 2; }

sources=("$main")
for module in "${modules[@]}"; do sources+=(Sources/$module/*.swift); done
binary=$OUT/$target

build() {
    mkdir -p "$OUT/shims"
    for module in "${CORE_MODULES[@]}"; do
        if [[ ! -f $OUT/shims/$module.swiftmodule ]]; then
            : > "$OUT/shims/empty.swift"
            "$SWIFTC" -parse-as-library -module-name "$module" -emit-module \
                -emit-module-path "$OUT/shims/$module.swiftmodule" "$OUT/shims/empty.swift"
        fi
    done
    local newest
    newest=$(ls -t "${sources[@]}" scripts/fuzz.sh | head -1)
    if [[ -x $binary && $binary -nt $newest ]]; then return; fi
    echo "fuzz.sh: compiling $binary (${#sources[@]} sources, -sanitize=fuzzer,address)"
    # ld.gold warns once per ASan helper symbol; keep real errors only.
    # Compiled from inside $OUT: the driver leaves module files in its working directory.
    local root=$PWD
    (cd "$OUT" && "$SWIFTC" -sanitize=fuzzer,address -parse-as-library -O -wmo -g -swift-version 5 \
        -module-name "Fuzz${target^}" -I shims "${sources[@]/#/$root/}" -o "$target" \
        2> >(grep -v "Cannot export local symbol '__asan" >&2))
}

# Small well-formed seeds so that the fuzzer starts from inputs that reach deep code.
seeds() {
    local dir=$OUT/seeds/$target
    mkdir -p "$dir"
    python3 - "$target" "$dir" <<'PY'
import os, struct, sys
target, out = sys.argv[1], sys.argv[2]
def msg(t, payload, req=1, tx=0):
    return struct.pack("<IIII", t, req, tx, len(payload)) + payload
seeds = {}
if target == "wire":
    seeds["write"] = b"\x00" + msg(11, b"/a/b\x00value")
    seeds["two"] = b"\x01" + msg(2, b"/a\x00") + msg(1, b"/\x00", 2)
    seeds["oversized"] = b"\x02" + msg(2, b"/x\x00") + struct.pack("<IIII", 2, 3, 0, 5000) + b"zz"
    seeds["partial"] = b"\x03" + msg(13, b"/local/domain/1\x00")[:20]
elif target == "server":
    # ServerMachine.swift op codes: 0 open, 1 request, 2 raw, 3 take output, 4 effects, 5 close,
    # 6 domain event, 7 time, 8 burst of writes.
    def req(conn, t, tx, args):
        body = bytes([1, conn, t, tx, len(args)])
        for kind, value in args:
            body += bytes([kind, value])
        return body
    # Byte 0 of each program picks the history window (1: 4096 commits, 2: 16).
    seeds["watch-write"] = (bytes([1]) + req(0, 4, 0, [(0, 1), (1, 0)]) + req(0, 11, 0, [(0, 1), (2, 3)])
                            + bytes([3, 0, 255]) + bytes([4]))
    seeds["transaction"] = (bytes([1]) + req(0, 6, 0, []) + req(0, 11, 1, [(0, 2), (2, 1)])
                            + req(0, 11, 0, [(0, 2), (2, 2)]) + req(0, 7, 1, [(3, 0)]) + bytes([3, 0, 255]))
    seeds["domu"] = (bytes([1]) + req(0, 8, 0, [(4, 5), (4, 1), (4, 7)]) + bytes([0, 5])
                     + req(1, 11, 0, [(0, 6), (2, 1)]) + req(1, 4, 0, [(0, 4), (1, 1)]) + bytes([6, 0, 5]) + bytes([4, 3, 1, 255]))
    seeds["burst"] = (bytes([0, 0, 3]) + req(0, 4, 0, [(0, 1), (1, 0)]) + req(1, 4, 0, [(0, 1), (1, 1)])
                      + bytes([8, 0, 1, 200]) + bytes([3, 1, 255, 3, 0, 255]))
    # A guest connection watching its home 4 times while another connection of the same guest
    # rewrites a long relative path 510 times: over 256 KiB of events, so events are dropped.
    watches = b"".join(req(1, 4, 0, [(0, 10), (1, k)]) for k in range(4))
    seeds["slow-guest-watcher"] = (bytes([1, 0, 1, 0, 1]) + watches + bytes([8, 2, 17, 255])
                                   + bytes([3, 1, 255, 4]))
elif target == "ring":
    # RingIndexes.swift: byte 0 even = endpoint program, odd = RingLink program.
    # Endpoint: fill request data, set req_prod to +32, read; write replies; hostile mode; read again.
    seeds["endpoint"] = (bytes([0, 0, 0, 32]) + bytes(range(32)) + bytes([1, 1, 8, 32]) + bytes([2, 10])
                         + bytes([4, 4]) + bytes(32) + bytes([6, 2, 0x83, 10, 5]))
    # Link: a WRITE and a READ from the guest, serve, read replies; then a corrupt req_prod and serve.
    seeds["link"] = (bytes([1, 0, 1, 0, 5]) + b"hello" + bytes([0, 0, 0, 3, 4])
                     + bytes([2, 1, 4, 3, 4, 5, 3, 3, 4]))
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
PY
}

case "$mode" in
    build) build ;;
    run)
        seconds=${3:-60}
        build
        seeds
        mkdir -p "$OUT/corpus/$target" "$OUT/artifacts"
        extra=()
        [[ -d Fuzz/seeds/$target ]] && extra+=("Fuzz/seeds/$target")
        echo "fuzz.sh: fuzzing $target for ${seconds}s (corpus $OUT/corpus/$target, log $OUT/$target.log)"
        status=0
        "$binary" -max_total_time="$seconds" -timeout=30 -detect_leaks=0 -rss_limit_mb=3072 -max_len=8192 \
            -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$target-" \
            "$OUT/corpus/$target" "$OUT/seeds/$target" "${extra[@]}" > "$OUT/$target.log" 2>&1 || status=$?
        # Progress and dictionary lines are noise here; crashes, errors and the final stats are kept.
        grep -v -E '^(#[0-9]+[[:space:]]|"|###### |[[:space:]]NEW_FUNC)' "$OUT/$target.log" || true
        if [[ $status -ne 0 ]]; then
            echo "fuzz.sh: $target FAILED (exit $status); inputs in $OUT/artifacts/$target-*" >&2
            exit 1
        fi
        echo "fuzz.sh: $target PASS (${seconds}s, no crash)"
        ;;
    replay)
        shift 2
        build
        "$binary" "$@"
        ;;
    *) echo "fuzz.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac
