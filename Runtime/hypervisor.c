/* hypervisor.c: Xen hypercall wrappers (x86_64 ABI through the hypercall page) and hypercall-page setup. */
#include "hypervisor.h"

#define HYPERCALL_STR_(x) #x
#define HYPERCALL_STR(x) HYPERCALL_STR_(x)
#define HYPERCALL_CALL(name) "call hypercall_page + (" HYPERCALL_STR(__HYPERVISOR_##name) " * 32)"

/* 64-bit hypercall ABI: number selects the stub; arguments in rdi, rsi, rdx, r10, r8; result in rax.
 * The stubs may clobber rcx and r11 (SYSCALL in PV). */
#define hypercall1(name, a1) ({                                                 \
    long r_, d1_;                                                               \
    __asm__ volatile(HYPERCALL_CALL(name)                                       \
                     : "=a"(r_), "=D"(d1_)                                      \
                     : "1"((long)(a1))                                          \
                     : "rcx", "r11", "memory");                                 \
    r_; })

#define hypercall2(name, a1, a2) ({                                             \
    long r_, d1_, d2_;                                                          \
    __asm__ volatile(HYPERCALL_CALL(name)                                       \
                     : "=a"(r_), "=D"(d1_), "=S"(d2_)                           \
                     : "1"((long)(a1)), "2"((long)(a2))                         \
                     : "rcx", "r11", "memory");                                 \
    r_; })

#define hypercall3(name, a1, a2, a3) ({                                         \
    long r_, d1_, d2_, d3_;                                                     \
    __asm__ volatile(HYPERCALL_CALL(name)                                       \
                     : "=a"(r_), "=D"(d1_), "=S"(d2_), "=d"(d3_)                \
                     : "1"((long)(a1)), "2"((long)(a2)), "3"((long)(a3))        \
                     : "rcx", "r11", "memory");                                 \
    r_; })

long HYPERVISOR_sched_op(int cmd, void *arg) { return hypercall2(sched_op, cmd, arg); }

long HYPERVISOR_event_channel_op(int cmd, void *arg) { return hypercall2(event_channel_op, cmd, arg); }

long HYPERVISOR_grant_table_op(unsigned int cmd, void *uop, unsigned int count)
{
    return hypercall3(grant_table_op, cmd, uop, count);
}

long HYPERVISOR_memory_op(unsigned int cmd, void *arg) { return hypercall2(memory_op, cmd, arg); }

long HYPERVISOR_hvm_op(unsigned long op, void *arg) { return hypercall2(hvm_op, op, arg); }

long HYPERVISOR_set_trap_table(const struct trap_info *table) { return hypercall1(set_trap_table, table); }

long HYPERVISOR_update_va_mapping(unsigned long va, uint64_t pte, unsigned long flags)
{
    return hypercall3(update_va_mapping, va, pte, flags);
}

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

void hypervisor_install_page(uint32_t cpuid_base)
{
    uint32_t eax, msr, ecx, edx;
    cpuid(cpuid_base + 2, &eax, &msr, &ecx, &edx);   /* ebx: MSR that takes the page address */
    wrmsr(msr, (uint64_t)(uintptr_t)hypercall_page);  /* identity mapped: virtual == physical */
}
