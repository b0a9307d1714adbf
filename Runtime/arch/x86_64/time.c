/* time.c (x86_64): the monotonic clock — Xen's per-vCPU time info scaled from the TSC (raw TSC ticks without Xen). */
#include "os.h"

/* (delta << or >> shift) * mul / 2^32, as Xen defines tsc_to_system_mul/tsc_shift. */
static uint64_t scale_delta(uint64_t delta, uint32_t mul, int8_t shift)
{
    if (shift < 0)
        delta >>= -shift;
    else
        delta <<= shift;
    return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

uint64_t clock_coarse_ns(void)
{
    if (!boot.shared_info)
        return 0;
    const volatile struct vcpu_time_info *t = &boot.shared_info->vcpu_info[0].time;
    uint32_t version;
    uint64_t ns;
    do {
        version = t->version;
        rmb();
        ns = t->system_time;
        rmb();
    } while ((version & 1) || version != t->version);
    return ns;
}

uint64_t clock_monotonic_ns(void)
{
    if (!boot.shared_info)
        return rdtsc();
    const volatile struct vcpu_time_info *t = &boot.shared_info->vcpu_info[0].time;
    uint32_t version;
    uint64_t ns;
    do {
        version = t->version;
        rmb();
        ns = t->system_time + scale_delta(rdtsc() - t->tsc_timestamp, t->tsc_to_system_mul, t->tsc_shift);
        rmb();
    } while ((version & 1) || version != t->version);
    return ns;
}
