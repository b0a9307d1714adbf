/* random.c: arc4random_buf for Swift's Hasher seed — the CPU's RNG when it has one (RDRAND), else a cycle-counter-seeded generator (weak, reported once). */
#include "os.h"

static int hw_checked, hw_ok;
static uint64_t fallback_state;

static int have_hw_random(void)
{
    if (!hw_checked) {
        hw_ok = arch_hw_random_available();
        hw_checked = 1;
        if (!hw_ok)
            console_puts("random: no " ARCH_HW_RNG_NAME ", hash seeds come from the " ARCH_CYCLES_NAME
                         " (not flood-resistant)\n");
    }
    return hw_ok;
}

static uint64_t next_word(void)
{
    uint64_t v;
    if (have_hw_random()) {
        for (int tries = 0; tries < 32; tries++)  /* Intel: retry RDRAND up to 10 times; be generous */
            if (arch_hw_random64(&v))
                return v;
        rt_panic("random: " ARCH_HW_RNG_NAME " keeps failing");
    }
    if (!fallback_state)
        fallback_state = arch_cycles() | 1;
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
