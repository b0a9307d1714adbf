#!/usr/bin/env bash
# Builds the runtime's heap (Runtime/mm.c) and its mem* functions (Runtime/lib/string.c) for the host and
# runs Tests/Runtime/mm_stress.c and Tests/Runtime/string_test.c against them (make runtime-test, part of
# make test). The entry points are renamed so that the test programs keep the host's own malloc and memcpy.
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
# string.c as the image builds it (-fno-builtin: its loops must not become calls to the host's memcpy)
gcc -O2 -fno-builtin -Wall -Werror -include Tests/Runtime/host_os.h -IRuntime/include \
    -Dmemcpy=rt_memcpy -Dmemmove=rt_memmove -Dmemset=rt_memset -Dmemcmp=rt_memcmp -Dstrlen=rt_strlen \
    -c Runtime/lib/string.c -o "$out/string.o"
gcc -O2 -Wall -Werror -c Tests/Runtime/string_test.c -o "$out/string_test.o"
gcc -o "$out/string_test" "$out/string_test.o" "$out/string.o"
"$out/string_test"
