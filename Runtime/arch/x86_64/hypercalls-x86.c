/* hypercalls-x86.c: the x86-only hypercalls (PV trap table and page-table updates) and hypercall-page setup. */
#include "hypervisor.h"
#include "hypercall.h"

long HYPERVISOR_set_trap_table(const struct trap_info *table) { return hypercall1(set_trap_table, table); }

long HYPERVISOR_update_va_mapping(unsigned long va, uint64_t pte, unsigned long flags)
{
    return hypercall3(update_va_mapping, va, pte, flags);
}

long HYPERVISOR_mmu_update(const struct mmu_update *req, unsigned int count, unsigned int *done, domid_t domid)
{
    return hypercall4(mmu_update, req, count, done, domid);
}

void hypervisor_install_page(uint32_t cpuid_base)
{
    uint32_t eax, msr, ecx, edx;
    cpuid(cpuid_base + 2, &eax, &msr, &ecx, &edx);   /* ebx: MSR that takes the page address */
    wrmsr(msr, (uint64_t)(uintptr_t)hypercall_page);  /* identity mapped: virtual == physical */
}
