/* hypervisor.c: Xen hypercall wrappers common to both architectures (the calling convention is the arch's hypercall.h). */
#include "hypervisor.h"
#include "hypercall.h"

long HYPERVISOR_sched_op(int cmd, void *arg) { return hypercall2(sched_op, cmd, arg); }

long HYPERVISOR_event_channel_op(int cmd, void *arg) { return hypercall2(event_channel_op, cmd, arg); }

long HYPERVISOR_grant_table_op(unsigned int cmd, void *uop, unsigned int count)
{
    return hypercall3(grant_table_op, cmd, uop, count);
}

long HYPERVISOR_memory_op(unsigned int cmd, void *arg) { return hypercall2(memory_op, cmd, arg); }

long HYPERVISOR_hvm_op(unsigned long op, void *arg) { return hypercall2(hvm_op, op, arg); }

long HYPERVISOR_console_io(int cmd, int count, const char *buf)
{
    return hypercall3(console_io, cmd, count, buf);
}

int hvm_get_param(uint32_t index, uint64_t *value)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = index };
    long rc = HYPERVISOR_hvm_op(HVMOP_get_param, &p);
    if (rc == 0)
        *value = p.value;
    return (int)rc;
}

void hvm_setup_shared_pages(void *shared_info_page)
{
    struct xen_add_to_physmap xatp = {
        .domid = DOMID_SELF,
        .space = XENMAPSPACE_shared_info,
        .idx = 0,
        .gpfn = virt_to_pfn(shared_info_page),
    };
    if (HYPERVISOR_memory_op(XENMEM_add_to_physmap, &xatp) == 0)
        boot.shared_info = (shared_info_t *)shared_info_page;
    uint64_t pfn = 0, port = 0;
    if (hvm_get_param(HVM_PARAM_CONSOLE_PFN, &pfn) == 0 && hvm_get_param(HVM_PARAM_CONSOLE_EVTCHN, &port) == 0) {
        boot.console_pfn = pfn;
        boot.console_evtchn = (uint32_t)port;
    }
}
