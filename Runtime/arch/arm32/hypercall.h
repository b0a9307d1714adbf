/* hypercall.h (arm32): hypercallN(name, ...) — `hvc #0xEA1` with the number in r12, arguments in r0-r4, result in r0. */
#ifndef ARM32_HYPERCALL_H
#define ARM32_HYPERCALL_H

/* Xen may clobber r1-r4 and r12 (debug builds poison them): all are outputs or clobbers. */
#define hypercall3(name, a1, a2, a3) ({                                         \
    register unsigned long r0_ __asm__("r0") = (unsigned long)(a1);             \
    register unsigned long r1_ __asm__("r1") = (unsigned long)(a2);             \
    register unsigned long r2_ __asm__("r2") = (unsigned long)(a3);             \
    register unsigned long r3_ __asm__("r3") = 0;                               \
    register unsigned long r12_ __asm__("r12") = __HYPERVISOR_##name;           \
    __asm__ volatile(".arch_extension virt\n\thvc #0xEA1"                       \
                     : "+r"(r0_), "+r"(r1_), "+r"(r2_), "+r"(r3_), "+r"(r12_)   \
                     :                                                          \
                     : "r4", "memory");                                         \
    (long)r0_; })

#define hypercall2(name, a1, a2) hypercall3(name, a1, a2, 0)
#define hypercall1(name, a1) hypercall3(name, a1, 0, 0)

#endif
