/* Xen's user-space libraries (libxen-dev) for the dom0 ring transport, plus a tiny helper Swift cannot express: domain state from xc_dominfo_t bitfields. */
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

/* Ring pages themselves are accessed through XenstoreHost's SharedRingPage (CHost's shim). */

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
