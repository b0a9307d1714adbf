/* mm_stress.c: the runtime's heap (Runtime/mm.c, built on the host) under a seeded alloc/free mix: no block overlaps another, small blocks do not split the heap so that a large buffer cannot fit, small blocks carry no header. */
#include <stdio.h>
#include "host_os.h"

/* mm.c's entry points, renamed when it is compiled for this test (scripts/runtime-test.sh). */
void init_mm(void);
int mm_test_posix_memalign(void **out, size_t align, size_t size);
void mm_test_free(void *p);
size_t mm_heap_used(void);
size_t mm_heap_peak(void);
void *mm_alloc_pages(size_t count);
void mm_reset_swift_heap(void);

struct boot_state boot;
void console_puts(const char *s) { fputs(s, stdout); }
void rt_exit(int code)
{
    printf("mm_stress: FAIL: the heap gave up (exit %d) with %zu KiB in use\n", code, mm_heap_used() / 1024);
    exit(1);
}
void rt_crash(int code) { rt_exit(code); }
void rt_panic(const char *msg)
{
    printf("mm_stress: FAIL: %s\n", msg);
    exit(1);
}

static uint64_t state = 88172645463325252ull;
static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

#define SLOTS 8000
#define EXTRA_BYTES (12u << 20)   /* with the image's 4 MiB: a 16 MiB heap, as a stub's */
static unsigned char extra[EXTRA_BYTES] __attribute__((aligned(4096)));
static unsigned char *blocks[SLOTS];
static size_t sizes[SLOTS];
static unsigned char fill[SLOTS];

int main(void)
{
    boot.heap_extra_start = (uint64_t)(uintptr_t)extra;
    boot.heap_extra_end = boot.heap_extra_start + sizeof(extra);
    init_mm();
    /* Mostly small blocks (tree nodes, ids), some of a few KiB, one in a hundred of 60-260 KiB
     * (growing arrays); about half the slots are live at a time, up to ~14 MiB at the peak. */
    for (long op = 0; op < 2000000; op++) {
        size_t k = next() % SLOTS;
        if (blocks[k]) {
            for (size_t b = 0; b < sizes[k]; b++)
                if (blocks[k][b] != fill[k]) {
                    printf("mm_stress: FAIL: block %zu overwritten at byte %zu\n", k, b);
                    return 1;
                }
            mm_test_free(blocks[k]);
            blocks[k] = NULL;
            continue;
        }
        size_t kind = next() % 100;
        size_t size = kind < 90 ? 16 + next() % 200 : kind < 99 ? 1000 + next() % 8000 : 60000 + next() % 200000;
        size_t align = next() % 50 == 0 ? 4096 : 16;
        void *p;
        if (mm_test_posix_memalign(&p, align, size) != 0 || ((uintptr_t)p & (align - 1))) {
            printf("mm_stress: FAIL: posix_memalign(%zu, %zu)\n", align, size);
            return 1;
        }
        blocks[k] = p;
        sizes[k] = size;
        fill[k] = (unsigned char)next();
        memset(p, fill[k], size);
    }
    printf("mm_stress: 2,000,000 operations, peak %zu KiB of a 16 MiB heap, no block overwritten\n",
           mm_heap_peak() / 1024);
    for (size_t k = 0; k < SLOTS; k++)
        if (blocks[k])
            mm_test_free(blocks[k]);
    /* Everything freed: the small blocks' pages stay with their size classes, packed low, so the
     * RAM region keeps one long run for a large buffer. */
    void *large;
    mm_test_posix_memalign(&large, 16, 8u << 20);
    printf("mm_stress: an 8 MiB buffer fits after everything is freed: PASS\n");

    /* Restart in place: the runtime's pages (a ring, a kept region) outlive a reset of the Swift
     * heap, which gives back every other page, the size classes' included. */
    unsigned char *ring = mm_alloc_pages(1), *region = mm_alloc_pages(3);
    memset(ring, 0xA5, 4096);
    memset(region, 0x5A, 3 * 4096);
    void *small;
    mm_test_posix_memalign(&small, 16, 100);
    mm_reset_swift_heap();
    if (mm_heap_used() != 4 * 4096) {
        printf("mm_stress: FAIL: after the reset %zu bytes are in use, not the 4 kept pages\n", mm_heap_used());
        return 1;
    }
    for (int round = 0; round < 3000; round++) {   /* the whole heap again, over and over */
        void *p;
        if (mm_test_posix_memalign(&p, 16, 4000) != 0)
            return 1;
        memset(p, 0, 4000);
    }
    for (size_t b = 0; b < 4096; b++)
        if (ring[b] != 0xA5 || region[b] != 0x5A || region[2 * 4096 + b] != 0x5A) {
            printf("mm_stress: FAIL: a kept page was handed out again after the reset\n");
            return 1;
        }
    printf("mm_stress: kept pages outlive a reset of the Swift heap: PASS\n");

    /* Small blocks carry no header: 4,096 tree-node-sized blocks of 96 bytes, 42 to a page, fill
     * 98 pages, not the 128 that 96 + a 16-byte header in 128-byte blocks took. */
    mm_reset_swift_heap();
    size_t before = mm_heap_used();
    for (int n = 0; n < 4096; n++) {
        void *p;
        if (mm_test_posix_memalign(&p, 16, 96) != 0 || ((uintptr_t)p & 15))
            return 1;
        memset(p, 0x11, 96);
    }
    size_t pages = (mm_heap_used() - before) / 4096;
    if (pages > 98) {
        printf("mm_stress: FAIL: 4,096 blocks of 96 bytes took %zu pages\n", pages);
        return 1;
    }
    /* alignment beyond 16 bytes comes from the classes whose size is a multiple of it */
    for (size_t align = 32; align <= 2048; align *= 2) {
        void *p;
        if (mm_test_posix_memalign(&p, align, align / 2 + 1) != 0 || ((uintptr_t)p & (align - 1))) {
            printf("mm_stress: FAIL: posix_memalign(%zu, %zu)\n", align, align / 2 + 1);
            return 1;
        }
    }
    printf("mm_stress: 4,096 blocks of 96 bytes in %zu pages, aligned classes: PASS\n", pages);
    return 0;
}
