/* time.c (arm32): the monotonic clock from the generic timer (CNTVCT / CNTFRQ); Xen on ARM keeps no time in vcpu_info. */
#include "os.h"

#define NS_PER_SEC 1000000000ull

uint64_t clock_monotonic_ns(void)
{
    uint64_t ticks = read_cntvct();
    uint32_t hz = read_cntfrq();
    if (hz == 0)
        return ticks;
    return ticks / hz * NS_PER_SEC + ticks % hz * NS_PER_SEC / hz;
}

/* The generic timer is read without a trap: the coarse clock is the precise one. */
uint64_t clock_coarse_ns(void) { return clock_monotonic_ns(); }
