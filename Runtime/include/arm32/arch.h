/* arm32/arch.h: armv7-a instructions wrapped as inline functions (barriers, generic timer, coprocessor registers). */
#ifndef ARCH_ARM32_H
#define ARCH_ARM32_H

#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ul << PAGE_SHIFT)

#define barrier() __asm__ volatile("" ::: "memory")
#define mb() __asm__ volatile("dmb ish" ::: "memory")
#define rmb() __asm__ volatile("dmb ish" ::: "memory")
#define wmb() __asm__ volatile("dmb ishst" ::: "memory")

/* CNTVCT: the virtual count of the generic timer (Xen offsets it to the domain's creation). */
static inline uint64_t read_cntvct(void)
{
    uint32_t lo, hi;
    __asm__ volatile("isb; mrrc p15, 1, %0, %1, c14" : "=r"(lo), "=r"(hi));
    return (uint64_t)hi << 32 | lo;
}

/* CNTFRQ: the counter's frequency in Hz, as firmware (QEMU) or Xen set it. */
static inline uint32_t read_cntfrq(void)
{
    uint32_t v;
    __asm__ volatile("mrc p15, 0, %0, c14, c0, 0" : "=r"(v));
    return v;
}

/* A free-running cycle count, for seeding the hash generator when there is no RNG. */
static inline uint64_t arch_cycles(void) { return read_cntvct(); }

/* armv7-a has no architectural random-number instruction. */
static inline int arch_hw_random_available(void) { return 0; }
static inline int arch_hw_random64(uint64_t *v)
{
    (void)v;
    return 0;
}
#define ARCH_HW_RNG_NAME "hardware RNG (armv7-a has none)"
#define ARCH_CYCLES_NAME "generic timer"

#endif
