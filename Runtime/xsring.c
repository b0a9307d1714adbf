/* xsring.c: the shared-page accessors the Swift ring transport (Sources/XenstoreRing) needs — one-shot index loads and barriers. */
#include "os.h"

/*
 * The ring logic itself (index validation, wrap-around, reconnection) is pure Swift in the core.
 * C supplies what Swift cannot express: a load the compiler must perform exactly once (a guest
 * rewrites its indexes at will; a re-read of a checked index would be a double fetch), and the
 * architecture's barriers. These are out-of-line functions, so they are also compiler barriers.
 */

uint32_t xsring_load32(const void *page, size_t offset)
{
    return *(const volatile uint32_t *)((const uint8_t *)page + offset);
}

void xsring_store32(void *page, size_t offset, uint32_t value)
{
    *(volatile uint32_t *)((uint8_t *)page + offset) = value;
}

void xsring_rmb(void) { rmb(); }
void xsring_wmb(void) { wmb(); }
void xsring_mb(void) { mb(); }
