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
