/* hypervisor.h: typed wrappers around the Xen hypercalls the runtime uses (hypervisor.c). */
#ifndef HYPERVISOR_H
#define HYPERVISOR_H

#include "os.h"
#include <xen/sched.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>

long HYPERVISOR_sched_op(int cmd, void *arg);
long HYPERVISOR_event_channel_op(int cmd, void *arg);
long HYPERVISOR_grant_table_op(unsigned int cmd, void *uop, unsigned int count);
long HYPERVISOR_memory_op(unsigned int cmd, void *arg);
long HYPERVISOR_hvm_op(unsigned long op, void *arg);
long HYPERVISOR_console_io(int cmd, int count, const char *buf);

/* Reads an HVM parameter of our own domain (PVH, ARM); 0 on success. */
int hvm_get_param(uint32_t index, uint64_t *value);

/* Auto-translated guests (PVH, ARM): maps Xen's shared_info over `shared_info_page` (sets
 * boot.shared_info) and reads the console ring's frame and event channel (boot.console_*). */
void hvm_setup_shared_pages(void *shared_info_page);

#if defined(__x86_64__)
/* Filled by Xen: from the HYPERCALL_PAGE note (PV) or by writing its MSR (PVH). */
extern char hypercall_page[];
long HYPERVISOR_set_trap_table(const struct trap_info *table);
long HYPERVISOR_update_va_mapping(unsigned long va, uint64_t pte, unsigned long flags);
long HYPERVISOR_mmu_update(const struct mmu_update *req, unsigned int count, unsigned int *done, domid_t domid);
/* Makes Xen fill hypercall_page (PVH: via the MSR from CPUID leaf base+2). */
void hypervisor_install_page(uint32_t cpuid_base);
#endif

#endif
