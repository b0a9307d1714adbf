#!/usr/bin/env bash
# Builds the runtime's heap (Runtime/mm.c) for the host and runs Tests/Runtime/mm_stress.c against it
# (make runtime-test, part of make test). mm.c's allocator entry points are renamed so that the test
# program keeps the host's own malloc.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/runtime-test
mkdir -p "$out"
gcc -O2 -Wall -Werror -include Tests/Runtime/host_os.h -IRuntime/include \
    -Dposix_memalign=mm_test_posix_memalign -Dfree=mm_test_free -Dmalloc=mm_test_malloc -Dcalloc=mm_test_calloc \
    -c Runtime/mm.c -o "$out/mm.o"
gcc -O2 -Wall -Werror -ITests/Runtime -c Tests/Runtime/mm_stress.c -o "$out/mm_stress.o"
gcc -o "$out/mm_stress" "$out/mm_stress.o" "$out/mm.o"
"$out/mm_stress"
