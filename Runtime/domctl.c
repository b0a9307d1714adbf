/* domctl.c: the one domain-control query the xenstore domain may make (XEN_DOMCTL_getdomaininfo): another domain's state, and which domain is the Xenstore domain (our own id). */
/* domctl.h is a tools-only interface (its version must match the hypervisor's); the tools view
 * of the public headers must be selected before xen.h is first included, i.e. before os.h. */
#define __XEN_TOOLS__ 1
#include "os.h"
#include <xen/domctl.h>
#include "hypercall.h"

static long HYPERVISOR_domctl(struct xen_domctl *op) { return hypercall1(domctl, op); }

int domain_state(uint16_t domid)
{
    if (!boot.xen)
        return -XEN_ENOSYS;
    struct xen_domctl op = {
        .cmd = XEN_DOMCTL_getdomaininfo,
        .interface_version = XEN_DOMCTL_INTERFACE_VERSION,
        .domain = domid,
    };
    long rc = HYPERVISOR_domctl(&op);
    rt_check_cpu_structures("after XEN_DOMCTL_getdomaininfo");
    if (rc == -XEN_ESRCH)
        return DOMAIN_STATE_GONE;
    if (rc != 0)
        return (int)rc;
    if (op.u.getdomaininfo.domain != domid)  /* older Xen: the next domain up was returned */
        return DOMAIN_STATE_GONE;
    uint32_t flags = op.u.getdomaininfo.flags;
    if (flags & XEN_DOMINF_dying)
        return DOMAIN_STATE_DYING;
    if (flags & XEN_DOMINF_shutdown)
        return DOMAIN_STATE_SHUTDOWN;
    return DOMAIN_STATE_RUNNING;
}

int domain_find_xenstore(void)
{
    if (!boot.xen)
        return -XEN_ENOSYS;
    for (uint32_t domid = 1; domid < XENSTORE_SEARCH_DOMIDS; domid++) {
        struct xen_domctl op = {
            .cmd = XEN_DOMCTL_getdomaininfo,
            .interface_version = XEN_DOMCTL_INTERFACE_VERSION,
            .domain = (domid_t)domid,
        };
        if (HYPERVISOR_domctl(&op) != 0)
            continue;
        if (op.u.getdomaininfo.flags & XEN_DOMINF_xs_domain)
            return op.u.getdomaininfo.domain;
        if (op.u.getdomaininfo.domain > domid)  /* older Xen: the next domain up was returned */
            domid = op.u.getdomaininfo.domain;
    }
    return -XEN_ESRCH;
}
