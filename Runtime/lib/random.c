/* random.c: arc4random_buf for Swift's Hasher seed — RDRAND when the CPU has it, else a TSC-seeded generator (weak, reported once). */
#include "os.h"

static int rdrand_checked, rdrand_ok;
static uint64_t fallback_state;

static int have_rdrand(void)
{
    if (!rdrand_checked) {
        uint32_t a, b, c, d;
        cpuid(1, &a, &b, &c, &d);
        rdrand_ok = (c >> 30) & 1;
        rdrand_checked = 1;
        if (!rdrand_ok)
            console_puts("random: no RDRAND, hash seeds come from the TSC (not flood-resistant)\n");
    }
    return rdrand_ok;
}

static uint64_t next_word(void)
{
    uint64_t v;
    if (have_rdrand()) {
        for (int tries = 0; tries < 32; tries++)  /* Intel: retry up to 10 times; be generous */
            if (rdrand64(&v))
                return v;
        rt_panic("random: RDRAND keeps failing");
    }
    if (!fallback_state)
        fallback_state = rdtsc() | 1;
    /* splitmix64 */
    uint64_t z = (fallback_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void arc4random_buf(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        uint64_t v = next_word();
        for (int i = 0; i < 8 && n; i++, n--, v >>= 8)
            *p++ = (uint8_t)v;
    }
}
