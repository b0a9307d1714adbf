/* time.c (x86_64): the monotonic clock — Xen's per-vCPU time info scaled from the TSC (raw TSC ticks without Xen) — and a coarse one from the time info alone. */
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

/* Xen's time record of vCPU 0, read consistently: the system time it holds, plus, with `with_tsc`,
 * the TSC's advance since Xen wrote it (an RDTSC, which traps where Xen emulates the TSC). */
static uint64_t system_time_ns(int with_tsc)
{
    const volatile struct vcpu_time_info *t = &boot.shared_info->vcpu_info[0].time;
    uint32_t version;
    uint64_t ns;
    do {
        version = t->version;
        rmb();
        ns = t->system_time;
        if (with_tsc)
            ns += scale_delta(rdtsc() - t->tsc_timestamp, t->tsc_to_system_mul, t->tsc_shift);
        rmb();
    } while ((version & 1) || version != t->version);
    return ns;
}

uint64_t clock_coarse_ns(void)
{
    return boot.shared_info ? system_time_ns(0) : 0;
}

uint64_t clock_monotonic_ns(void)
{
    return boot.shared_info ? system_time_ns(1) : rdtsc();
}
