/* hypercall.h (x86_64): hypercallN(name, ...) — calls through the hypercall page Xen filled in. */
#ifndef X86_64_HYPERCALL_H
#define X86_64_HYPERCALL_H

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

#define hypercall4(name, a1, a2, a3, a4) ({                                     \
    long r_, d1_, d2_, d3_;                                                     \
    register long d4_ __asm__("r10") = (long)(a4);                              \
    __asm__ volatile(HYPERCALL_CALL(name)                                       \
                     : "=a"(r_), "=D"(d1_), "=S"(d2_), "=d"(d3_), "+r"(d4_)     \
                     : "1"((long)(a1)), "2"((long)(a2)), "3"((long)(a3))        \
                     : "rcx", "r11", "memory");                                 \
    r_; })

#endif
