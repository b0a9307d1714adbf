/* string_test.c: Runtime/lib/string.c (built for the host, its functions renamed rt_*) against plain byte loops: every size to 300, every alignment, overlaps both ways. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void *rt_memcpy(void *d, const void *s, size_t n);
void *rt_memmove(void *d, const void *s, size_t n);
void *rt_memset(void *d, int c, size_t n);
int rt_memcmp(const void *a, const void *b, size_t n);

#define SPAN 640
static unsigned char buffer[SPAN], expected[SPAN], source[SPAN];
static int failures;

static void fill(unsigned char *p, unsigned seed)
{
    for (int i = 0; i < SPAN; i++)
        p[i] = (unsigned char)(seed * 131u + (unsigned)i * 17u + 1u);
}

static void check(const char *what, size_t n, size_t d, size_t s)
{
    for (int i = 0; i < SPAN; i++) {
        if (buffer[i] != expected[i]) {
            if (failures++ < 10)
                printf("FAIL %s n=%zu dst+%zu src+%zu: byte %d is %u, expected %u\n", what, n, d, s, i, buffer[i], expected[i]);
            return;
        }
    }
}

static int sign(int v) { return (v > 0) - (v < 0); }

int main(void)
{
    unsigned long checks = 0;
    for (size_t n = 0; n <= 300; n++) {
        for (size_t d = 0; d < 16; d++) {
            for (size_t s = 0; s < 16; s++) {
                /* memcpy between separate buffers */
                fill(buffer, (unsigned)(n + d));
                fill(expected, (unsigned)(n + d));
                fill(source, (unsigned)s + 7u);
                for (size_t i = 0; i < n; i++)
                    expected[64 + d + i] = source[64 + s + i];
                if (rt_memcpy(buffer + 64 + d, source + 64 + s, n) != buffer + 64 + d)
                    failures++;
                check("memcpy", n, d, s);
                /* memmove within one buffer, destination below and above the source */
                for (int way = 0; way < 2; way++) {
                    size_t dst = way ? 64 + s + d : 64 + s, src = way ? 64 + s : 64 + s + d;
                    fill(buffer, (unsigned)n);
                    fill(expected, (unsigned)n);
                    unsigned char copy[SPAN];
                    for (size_t i = 0; i < n; i++)
                        copy[i] = expected[src + i];
                    for (size_t i = 0; i < n; i++)
                        expected[dst + i] = copy[i];
                    if (rt_memmove(buffer + dst, buffer + src, n) != buffer + dst)
                        failures++;
                    check(way ? "memmove up" : "memmove down", n, dst - 64, src - 64);
                }
                checks += 3;
            }
            /* memset */
            fill(buffer, (unsigned)n);
            fill(expected, (unsigned)n);
            for (size_t i = 0; i < n; i++)
                expected[64 + d + i] = (unsigned char)(0xA5 + d);
            rt_memset(buffer + 64 + d, (int)(0xA5 + d) | 0x7700, n);  /* only the low byte counts */
            check("memset", n, d, 0);
            /* memcmp: equal, then one byte differing at each position, both signs */
            fill(buffer, 3);
            fill(source, 3);
            if (rt_memcmp(buffer + 64 + d, source + 64 + (d * 5) % 16, 0) != 0)
                failures++;
            for (size_t i = 0; i < n; i++)  /* the same bytes at another alignment */
                source[300 + (d * 5) % 16 + i] = buffer[64 + d + i];
            if (rt_memcmp(buffer + 64 + d, source + 300 + (d * 5) % 16, n) != 0) {
                failures++;
                printf("FAIL memcmp equal, misaligned, n=%zu +%zu\n", n, d);
            }
            fill(source, 3);
            if (rt_memcmp(buffer + 64 + d, source + 64 + d, n) != 0) {
                failures++;
                printf("FAIL memcmp equal n=%zu +%zu\n", n, d);
            }
            for (size_t at = 0; at < n; at += 1 + n / 40) {
                source[64 + d + at] ^= 0x80;
                int want = sign((int)buffer[64 + d + at] - (int)source[64 + d + at]);
                int got = sign(rt_memcmp(buffer + 64 + d, source + 64 + d, n));
                int back = sign(rt_memcmp(source + 64 + d, buffer + 64 + d, n));
                if (got != want || back != -want) {
                    if (failures++ < 10)
                        printf("FAIL memcmp n=%zu +%zu differing at %zu: %d/%d, expected %d\n", n, d, at, got, back, want);
                }
                source[64 + d + at] ^= 0x80;
                checks++;
            }
        }
    }
    if (failures) {
        printf("string_test: %d failures\n", failures);
        return 1;
    }
    printf("string_test: PASS (%lu checks)\n", checks);
    return 0;
}
