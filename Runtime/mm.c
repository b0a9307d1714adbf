/* mm.c: page allocator over the heap region (.bss.heap) and a size-class heap on top of it (posix_memalign/malloc/free). */
#include "mm.h"

#ifndef MM_HEAP_PAGES
#define MM_HEAP_PAGES 1024                  /* 4 MiB */
#endif

/*
 * Small blocks (up to 2048 bytes) come from pages given to one size class each, with no header:
 * page_class[] says which class a page serves, so free() finds the class from the address. The
 * classes step by 16 bytes up to 256 (a tree node is 96-112 bytes, a short array 48-80): with the
 * 16-byte header and power-of-two classes this heap had before, a 96-byte node took 128 bytes and
 * a 33-byte array 64 (issue 20). Larger requests, and alignments no class gives, take whole pages
 * with a header in front of the user pointer.
 */
static const uint16_t class_size[] = {
    16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
    320, 384, 448, 512, 640, 768, 1024, 1360, 2048,
};
#define NR_CLASSES (sizeof(class_size) / sizeof(class_size[0]))
#define SMALL_MAX 2048
#define HEADER_MAGIC 0x58534850u            /* "PHSX": a page-sized allocation's header */
#define FREE_MAGIC 0x45455246534b4c42ull    /* "BLKSFREE" in a free small block's second word */

#ifndef MM_EXTRA_MAX_PAGES
#define MM_EXTRA_MAX_PAGES 65536            /* RAM beyond the image the heap may grow into: 256 MiB */
#endif
#define MM_MAX_PAGES (MM_HEAP_PAGES + MM_EXTRA_MAX_PAGES)

/*
 * Page index space: [0, MM_HEAP_PAGES) is heap_area in .bss (always there, PV and PVH);
 * [MM_HEAP_PAGES, MM_HEAP_PAGES + extra_pages) is the domain's RAM after the image, when the
 * boot code found some (boot.heap_extra_*: PVH, where all RAM below 4 GiB is identity-mapped;
 * PV, once the boot code has mapped the domain's pages beyond Xen's bootstrap area).
 * No multi-page run crosses from one region into the other.
 */
static uint8_t heap_area[MM_HEAP_PAGES * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE), section(".bss.heap")));
static uint8_t *extra_base;
static size_t extra_pages;
static size_t total_pages = MM_HEAP_PAGES;
static uint64_t page_bitmap[(MM_MAX_PAGES + 63) / 64];   /* bit set = page in use */
/* bit set = a page the runtime took for itself (mm_alloc_pages: rings, grant mappings, the disk's
 * buffers, kept regions): it stays in use when mm_reset_swift_heap frees everything else. */
static uint64_t kept_bitmap[(MM_MAX_PAGES + 63) / 64];
static size_t pages_in_use;
static size_t peak_pages_in_use;
static size_t lowest_region_top;            /* one past the highest single page ever handed out */
static size_t highest_region_bottom = (size_t)-1;   /* the lowest first page of any longer run */

static uint8_t *page_address(size_t i)
{
    return i < MM_HEAP_PAGES ? heap_area + i * PAGE_SIZE : extra_base + (i - MM_HEAP_PAGES) * PAGE_SIZE;
}

/* Index of the page at p, or (size_t)-1 if p is not a heap page address. */
static size_t page_index(const void *p)
{
    const uint8_t *b = p;
    if (b >= heap_area && b < heap_area + sizeof(heap_area))
        return (size_t)(b - heap_area) / PAGE_SIZE;
    if (extra_base && b >= extra_base && b < extra_base + extra_pages * PAGE_SIZE)
        return MM_HEAP_PAGES + (size_t)(b - extra_base) / PAGE_SIZE;
    return (size_t)-1;
}
static void *free_blocks[NR_CLASSES];       /* singly linked through the first word of a block */
static uint8_t page_class[MM_MAX_PAGES];    /* 1 + the size class a page serves; 0 = not a class page */

/* Precedes every pointer of a page-sized allocation: enough to find and size the run. */
struct alloc_header {
    uint32_t magic;
    uint32_t reserved;
    uint32_t pages;
    uint32_t offset;                        /* user pointer - block start */
};
_Static_assert(sizeof(struct alloc_header) == 16, "header keeps 16-byte alignment");

static int page_used(size_t i) { return (page_bitmap[i / 64] >> (i % 64)) & 1; }
static void page_mark(size_t i, int used)
{
    if (used)
        page_bitmap[i / 64] |= 1ull << (i % 64);
    else
        page_bitmap[i / 64] &= ~(1ull << (i % 64));
}
static void page_keep(size_t i, int kept)
{
    if (kept)
        kept_bitmap[i / 64] |= 1ull << (i % 64);
    else
        kept_bitmap[i / 64] &= ~(1ull << (i % 64));
}

void init_mm(void)
{
    /* heap_area and page_bitmap are in .bss: zero, all pages free */
    pages_in_use = 0;
    uint64_t start = (boot.heap_extra_start + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
    uint64_t end = boot.heap_extra_end & ~(uint64_t)(PAGE_SIZE - 1);
    if (end > start) {
        extra_base = (uint8_t *)(uintptr_t)start;
        extra_pages = (size_t)((end - start) / PAGE_SIZE);
        if (extra_pages > MM_EXTRA_MAX_PAGES)
            extra_pages = MM_EXTRA_MAX_PAGES;
        total_pages = MM_HEAP_PAGES + extra_pages;
    }
}

#define NO_PAGE ((size_t)-1)

/* Whether all 64 pages of bitmap word w are in use (bits past the end are 0: free). */
static int word_full(size_t w) { return page_bitmap[w] == ~0ull; }

/* First fit from the bottom: the lowest free page, or NO_PAGE. */
static size_t find_low_page(void)
{
    for (size_t i = 0; i < total_pages;) {
        if (i % 64 == 0 && word_full(i / 64)) {
            i += 64;
            continue;
        }
        if (!page_used(i))
            return i;
        i++;
    }
    return NO_PAGE;
}

/* First fit from the top: the highest `count` free pages in one region, or NO_PAGE. */
static size_t find_high(size_t count)
{
    size_t run = 0;
    for (size_t i = total_pages; i > 0;) {
        size_t page = i - 1;
        if (i % 64 == 0 && word_full(page / 64)) {
            run = 0;
            i -= 64;
            continue;
        }
        if (page == MM_HEAP_PAGES - 1)
            run = 0; /* runs never span the two regions */
        run = page_used(page) ? 0 : run + 1;
        if (run == count)
            return page;
        i--;
    }
    return NO_PAGE;
}

/*
 * Single pages (the size classes' pages, small page allocations) are taken first fit from the
 * bottom and longer runs first fit from the top, so small blocks pack together low and leave the
 * high pages in long free runs for large buffers (array growth doubles them). With one next-fit
 * cursor for both, the classes' pages spread through the whole heap and a large request found no
 * run long enough although a third of the heap was free (the PV stub's "mm: out of memory" with a
 * disk, docs/stubdom.md).
 */
static void *alloc_pages(size_t count, int kept)
{
    if (count == 0 || count > total_pages)
        return NULL;
    size_t first = count == 1 ? find_low_page() : find_high(count);   /* both search the whole heap */
    if (first == NO_PAGE)
        return NULL;
    for (size_t j = first; j < first + count; j++) {
        page_mark(j, 1);
        page_keep(j, kept);
    }
    pages_in_use += count;
    if (pages_in_use > peak_pages_in_use)
        peak_pages_in_use = pages_in_use;
    if (count == 1 && first + 1 > lowest_region_top)
        lowest_region_top = first + 1;
    if (count > 1 && first < highest_region_bottom)
        highest_region_bottom = first;
    void *p = page_address(first);
    memset(p, 0, count * PAGE_SIZE);
    return p;
}

/* The runtime's own pages: kept by mm_reset_swift_heap. */
void *mm_alloc_pages(size_t count) { return alloc_pages(count, 1); }

void mm_free_pages(void *pages, size_t count)
{
    size_t first = page_index(pages);
    if (first == (size_t)-1 || first + count > total_pages || (first < MM_HEAP_PAGES && first + count > MM_HEAP_PAGES))
        rt_panic("mm_free_pages: pointer outside the heap");
    for (size_t j = first; j < first + count; j++) {
        page_mark(j, 0);
        page_keep(j, 0);
    }
    pages_in_use -= count;
}

void mm_reset_swift_heap(void)
{
    for (size_t w = 0; w < (total_pages + 63) / 64; w++) {
        uint64_t dropped = page_bitmap[w] & ~kept_bitmap[w];
        pages_in_use -= (size_t)__builtin_popcountll(dropped);
        page_bitmap[w] &= kept_bitmap[w];
    }
    for (unsigned c = 0; c < NR_CLASSES; c++)
        free_blocks[c] = NULL;
    memset(page_class, 0, sizeof(page_class));   /* kept pages are never class pages */
}

size_t mm_heap_used(void) { return pages_in_use * PAGE_SIZE; }
size_t mm_heap_size(void) { return total_pages * PAGE_SIZE; }
size_t mm_heap_peak(void) { return peak_pages_in_use * PAGE_SIZE; }
/* The heap's extent touched: the single pages' top plus the longer runs' span from the end. */
size_t mm_heap_reach(void)
{
    size_t runs = highest_region_bottom == (size_t)-1 ? 0 : total_pages - highest_region_bottom;
    return (lowest_region_top + runs) * PAGE_SIZE;
}

/* Takes one block of class c, refilling the class from a fresh page when empty (blocks that do
 * not fill the page evenly leave its tail unused). */
static void *class_take(unsigned c)
{
    if (!free_blocks[c]) {
        uint8_t *page = alloc_pages(1, 0);
        if (!page)
            return NULL;
        page_class[page_index(page)] = (uint8_t)(c + 1);
        size_t size = class_size[c];
        /* pushed from the top, so that blocks are handed out from the page's start */
        for (size_t off = (PAGE_SIZE / size - 1) * size;; off -= size) {
            *(void **)(page + off) = free_blocks[c];
            ((uint64_t *)(page + off))[1] = FREE_MAGIC;
            free_blocks[c] = page + off;
            if (off == 0)
                break;
        }
    }
    void *block = free_blocks[c];
    free_blocks[c] = *(void **)block;
    ((uint64_t *)block)[1] = 0;
    return block;
}

/* Out of heap: the one way a failed allocation ends. */
static __attribute__((noreturn)) void out_of_memory(void)
{
    console_puts("mm: out of memory\n");
    rt_crash(RT_EXIT_OOM);   /* a restart in place frees the whole Swift heap, when armed */
}

/* The smallest class whose blocks hold `size` bytes at alignment `align`, or NR_CLASSES. Blocks
 * sit at multiples of their size in a page, so a class serves alignment `align` when its size is
 * a multiple of it. */
static unsigned class_for(size_t size, size_t align)
{
    if (size > SMALL_MAX)
        return NR_CLASSES;
    for (unsigned c = 0; c < NR_CLASSES; c++)
        if (class_size[c] >= size && class_size[c] % align == 0)
            return c;
    return NR_CLASSES;
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < 16)
        align = 16;
    if (align & (align - 1) || align > PAGE_SIZE)
        return 22; /* EINVAL */
    unsigned c = class_for(size ? size : 1, align);
    if (c < NR_CLASSES) {
        void *block = class_take(c);
        if (!block)
            out_of_memory();
        *out = block;
        return 0;
    }
    /* room for the header and for moving the user pointer up to the alignment */
    size_t need = size + sizeof(struct alloc_header) + (align > 16 ? align - 16 : 0);
    if (need < size)
        return 12; /* ENOMEM: overflow */
    uint32_t pages = (uint32_t)((need + PAGE_SIZE - 1) / PAGE_SIZE);
    uint8_t *block = alloc_pages(pages, 0);
    if (!block)
        out_of_memory();
    uintptr_t user = ((uintptr_t)block + sizeof(struct alloc_header) + align - 1) & ~(uintptr_t)(align - 1);
    struct alloc_header *h = (struct alloc_header *)user - 1;
    *h = (struct alloc_header){
        .magic = HEADER_MAGIC,
        .pages = pages,
        .offset = (uint32_t)(user - (uintptr_t)block),
    };
    *out = (void *)user;
    return 0;
}

void free(void *p)
{
    if (!p)
        return;
    size_t page = page_index(p);
    if (page == (size_t)-1)
        rt_panic("free: not a heap pointer");
    if (page_class[page]) {
        unsigned c = page_class[page] - 1u;
        size_t offset = (size_t)((uintptr_t)p & (PAGE_SIZE - 1));
        if (offset % class_size[c] != 0)
            rt_panic("free: not the start of a heap block");
        if (((uint64_t *)p)[1] == FREE_MAGIC)
            rt_panic("free: double free");
        *(void **)p = free_blocks[c];
        ((uint64_t *)p)[1] = FREE_MAGIC;
        free_blocks[c] = p;
        return;
    }
    struct alloc_header *h = (struct alloc_header *)p - 1;
    if (h->magic != HEADER_MAGIC)
        rt_panic("free: not a heap pointer (or double free)");
    h->magic = 0;
    mm_free_pages((uint8_t *)p - h->offset, h->pages);
}

void *malloc(size_t size)
{
    void *p;
    return posix_memalign(&p, 16, size) == 0 ? p : NULL;
}

void *calloc(size_t count, size_t size)
{
    size_t total = count * size;
    if (size && total / size != count)
        return NULL;
    void *p = malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}
