/* time.c: the wall clock from Xen's shared_info (wc_sec/wc_nsec + the arch's coarse monotonic clock); 0 without Xen. */
#include "os.h"

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
    return (int64_t)(sec + (nsec + clock_coarse_ns()) / 1000000000ull);
}
