/* xsring.c: the xenstore ring transport — moving bytes through a mapped struct xenstore_domain_interface (xs_wire.h). */
#include "os.h"
#include <xen/io/xs_wire.h>

/*
 * Indices are free-running 32-bit counters; byte i lives at MASK_XENSTORE_IDX(i). The guest
 * owns req_prod and rsp_cons, we own req_cons and rsp_prod. A guest can write anything into
 * its indices, so every distance is checked against the ring size (XSA-38) before use.
 */

static inline volatile struct xenstore_domain_interface *ring_of(void *page) { return page; }

long xsring_read(void *page, uint8_t *buf, size_t len)
{
    volatile struct xenstore_domain_interface *r = ring_of(page);
    XENSTORE_RING_IDX cons = r->req_cons, prod = r->req_prod;
    rmb(); /* the data must not be read before prod */
    if (prod - cons > XENSTORE_RING_SIZE)
        return -1;
    size_t n = 0;
    while (n < len && cons != prod)
        buf[n++] = (uint8_t)r->req[MASK_XENSTORE_IDX(cons++)];
    mb(); /* finish reading the data before handing the space back */
    r->req_cons = cons;
    return (long)n;
}

size_t xsring_space(void *page)
{
    volatile struct xenstore_domain_interface *r = ring_of(page);
    XENSTORE_RING_IDX used = r->rsp_prod - r->rsp_cons;
    return used > XENSTORE_RING_SIZE ? 0 : XENSTORE_RING_SIZE - used;
}

size_t xsring_write(void *page, const uint8_t *buf, size_t len)
{
    volatile struct xenstore_domain_interface *r = ring_of(page);
    size_t space = xsring_space(page);
    if (len > space)
        len = space;
    XENSTORE_RING_IDX prod = r->rsp_prod;
    mb(); /* rsp_cons was read before we overwrite the space it freed */
    for (size_t i = 0; i < len; i++)
        r->rsp[MASK_XENSTORE_IDX(prod++)] = (char)buf[i];
    wmb(); /* the data is visible before the index */
    r->rsp_prod = prod;
    return len;
}

int xsring_has_input(void *page)
{
    volatile struct xenstore_domain_interface *r = ring_of(page);
    return r->req_prod != r->req_cons;
}
