/* time.c: clocks from Xen's per-vCPU time info and wall clock in shared_info (TSC ticks without Xen). */
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

int64_t clock_wall_seconds(void)
{
    if (!boot.shared_info)
        return 0;
    const volatile shared_info_t *s = boot.shared_info;
    uint32_t version;
    uint64_t sec, nsec;
    do {
        version = s->wc_version;
        rmb();
        sec = s->wc_sec | (uint64_t)s->xen_wc_sec_hi << 32;
        nsec = s->wc_nsec;
        rmb();
    } while ((version & 1) || version != s->wc_version);
    return (int64_t)(sec + (nsec + clock_monotonic_ns()) / 1000000000ull);
}
