/* mm.h: the page allocator and heap (mm.c); the heap backs posix_memalign/malloc/free. */
#ifndef MM_H
#define MM_H

#include "os.h"

/* Allocates `count` contiguous zeroed pages from the heap region; NULL when exhausted. */
void *mm_alloc_pages(size_t count);
/* Returns pages obtained from mm_alloc_pages. */
void mm_free_pages(void *pages, size_t count);
/* Restart in place (restart.c): frees every page of the Swift heap (posix_memalign/malloc and
 * their size classes) at once; the pages the runtime took with mm_alloc_pages stay in use. */
void mm_reset_swift_heap(void);

#endif
