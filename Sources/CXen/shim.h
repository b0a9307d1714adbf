/* Xen's user-space libraries (libxen-dev) for the dom0 ring transport, plus tiny helpers Swift cannot express: volatile ring index access, barriers, domain state from xc_dominfo_t bitfields. */
#ifndef XENSTORE_SWIFT_CXEN_SHIM_H
#define XENSTORE_SWIFT_CXEN_SHIM_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenforeignmemory.h>
#include <xen/grant_table.h>

/* Reads a 32-bit word of a shared page exactly once (the other side writes it concurrently). */
static inline uint32_t xsx_load32(const void *page, long offset) {
    return *(const volatile uint32_t *)((const char *)page + offset);
}

/* Writes a 32-bit word of a shared page. */
static inline void xsx_store32(void *page, long offset, uint32_t value) {
    *(volatile uint32_t *)((char *)page + offset) = value;
}

/* Copies bytes out of / into a shared page (offsets already validated by the caller). */
static inline void xsx_copy_out(const void *page, long offset, void *to, long count) {
    memcpy(to, (const char *)page + offset, (size_t)count);
}
static inline void xsx_copy_in(void *page, long offset, const void *from, long count) {
    memcpy((char *)page + offset, from, (size_t)count);
}

/* Barriers as Linux's virt_rmb / virt_wmb / virt_mb. */
static inline void xsx_read_barrier(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void xsx_write_barrier(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void xsx_full_barrier(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* Domain states for the daemon: gone, running, shut down (still exists), dying. */
enum { XSX_DOMAIN_GONE = 0, XSX_DOMAIN_RUNNING = 1, XSX_DOMAIN_SHUTDOWN = 2, XSX_DOMAIN_DYING = 3 };

/* Asks Xen for one domain's state (xc_domain_getinfo returns the next existing domain, so the id is checked). */
static inline int xsx_domain_state(xc_interface *xch, uint32_t domid) {
    xc_dominfo_t info;
    if (xc_domain_getinfo(xch, domid, 1, &info) != 1 || info.domid != domid)
        return XSX_DOMAIN_GONE;
    if (info.dying)
        return XSX_DOMAIN_DYING;
    if (info.shutdown)
        return XSX_DOMAIN_SHUTDOWN;
    return XSX_DOMAIN_RUNNING;
}

#endif
