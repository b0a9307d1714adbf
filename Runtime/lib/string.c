/* string.c: the <string.h> subset Embedded Swift and the runtime need (mem*, strlen), freestanding, a machine word at a time. */
#include "os.h"

/*
 * Every array copy, allocation and ring copy of the stub goes through these. Under Xen in QEMU
 * each guest instruction is emulated, so a byte loop made copying a 4 KiB block cost about 12,000
 * loop iterations; a word at a time (four words per iteration) costs an eighth of that.
 *
 * x86_64 loads and stores unaligned words at full speed, so it copies words whatever the
 * alignment. ARMv7 takes unaligned single-word accesses but faults on unaligned doubleword and
 * multiple ones (which the compiler may combine word accesses into), so there words are used only
 * when destination and source are aligned alike, after copying bytes up to the boundary.
 * `may_alias`: the words read and write memory of any type.
 */
#if defined(__x86_64__)
typedef uint64_t __attribute__((__may_alias__, __aligned__(1))) word_t;
#define ANY_ALIGNMENT 1
#else
typedef uint32_t __attribute__((__may_alias__)) word_t;
#define ANY_ALIGNMENT 0
#endif
#define WORD_BYTES sizeof(word_t)
#define WORD_MASK ((uintptr_t)(WORD_BYTES - 1))

/* Whether p and q can be walked a word at a time, after bytes up to p's word boundary. */
static inline int words_line_up(const void *p, const void *q)
{
    return ANY_ALIGNMENT || (((uintptr_t)p ^ (uintptr_t)q) & WORD_MASK) == 0;
}

/* Bytes to copy one at a time before p reaches a word boundary (0 where alignment does not matter). */
static inline size_t bytes_to_boundary(const void *p, size_t n)
{
    size_t lead = ANY_ALIGNMENT ? 0 : (WORD_BYTES - ((uintptr_t)p & WORD_MASK)) & WORD_MASK;
    return lead < n ? lead : n;
}

void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    size_t lead = bytes_to_boundary(p, n);
    n -= lead;
    while (lead--)
        *p++ = (unsigned char)c;
    word_t fill = (word_t)0x0101010101010101ull * (unsigned char)c;
    word_t *w = (word_t *)p;
    for (; n >= 4 * WORD_BYTES; n -= 4 * WORD_BYTES, w += 4) {
        w[0] = fill;
        w[1] = fill;
        w[2] = fill;
        w[3] = fill;
    }
    for (; n >= WORD_BYTES; n -= WORD_BYTES)
        *w++ = fill;
    p = (unsigned char *)w;
    while (n--)
        *p++ = (unsigned char)c;
    return d;
}

/* Copies n bytes upwards (from the lowest address); safe when d is below s even if they overlap. */
static void copy_forward(unsigned char *dp, const unsigned char *sp, size_t n)
{
    if (n >= 2 * WORD_BYTES && words_line_up(dp, sp)) {
        size_t lead = bytes_to_boundary(dp, n);
        n -= lead;
        while (lead--)
            *dp++ = *sp++;
        word_t *dw = (word_t *)dp;
        const word_t *sw = (const word_t *)sp;
        for (; n >= 4 * WORD_BYTES; n -= 4 * WORD_BYTES, dw += 4, sw += 4) {
            word_t a = sw[0], b = sw[1], c = sw[2], e = sw[3];
            dw[0] = a;
            dw[1] = b;
            dw[2] = c;
            dw[3] = e;
        }
        for (; n >= WORD_BYTES; n -= WORD_BYTES)
            *dw++ = *sw++;
        dp = (unsigned char *)dw;
        sp = (const unsigned char *)sw;
    }
    while (n--)
        *dp++ = *sp++;
}

/* Copies n bytes downwards (from the highest address); safe when d is above s even if they overlap.
 * dp and sp point one past the end. */
static void copy_backward(unsigned char *dp, const unsigned char *sp, size_t n)
{
    if (n >= 2 * WORD_BYTES && words_line_up(dp, sp)) {
        size_t lead = ANY_ALIGNMENT ? 0 : (uintptr_t)dp & WORD_MASK;
        n -= lead;
        while (lead--)
            *--dp = *--sp;
        word_t *dw = (word_t *)dp;
        const word_t *sw = (const word_t *)sp;
        for (; n >= 4 * WORD_BYTES; n -= 4 * WORD_BYTES) {
            dw -= 4;
            sw -= 4;
            word_t e = sw[3], c = sw[2], b = sw[1], a = sw[0];
            dw[3] = e;
            dw[2] = c;
            dw[1] = b;
            dw[0] = a;
        }
        for (; n >= WORD_BYTES; n -= WORD_BYTES)
            *--dw = *--sw;
        dp = (unsigned char *)dw;
        sp = (const unsigned char *)sw;
    }
    while (n--)
        *--dp = *--sp;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
    copy_forward(d, s, n);
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    unsigned char *dp = d;
    const unsigned char *sp = s;
    if (dp < sp || dp >= sp + n)
        copy_forward(dp, sp, n);
    else if (dp > sp)
        copy_backward(dp + n, sp + n, n);
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    if (n >= 2 * WORD_BYTES && words_line_up(x, y)) {
        size_t lead = bytes_to_boundary(x, n);
        for (; lead; lead--, n--, x++, y++)
            if (*x != *y)
                return *x - *y;
        const word_t *xw = (const word_t *)x, *yw = (const word_t *)y;
        while (n >= WORD_BYTES && *xw == *yw) {  /* equal words; the first unequal one is compared by bytes */
            xw++;
            yw++;
            n -= WORD_BYTES;
        }
        x = (const unsigned char *)xw;
        y = (const unsigned char *)yw;
    }
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* Not <string.h>: the decimal text of v (at most 20 digits) into buf, NUL-terminated. */
void rt_decimal(uint64_t v, char *buf)
{
    char tmp[21];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
}
