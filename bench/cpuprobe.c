/* cpuprobe.c: how fast the CPU this process runs on is right now: a fixed integer loop, timed.
 *
 *   cpuprobe [STEPS_MILLIONS]     (default 20)
 *
 * Prints one number: milliseconds of wall-clock time for STEPS_MILLIONS million steps of a
 * xorshift generator (no memory traffic, no system calls inside the loop). `make bench-xen` runs it
 * in dom0 before each workload: under QEMU's TCG on a shared host the emulated machine's speed
 * varies from boot to boot, and the probe measures that beside each result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    long millions = argc > 1 ? atol(argv[1]) : 20;
    if (millions <= 0)
        millions = 20;
    volatile uint64_t sink;
    uint64_t x = 88172645463325252ull;
    double start = now_ms();
    for (long i = 0; i < millions * 1000000L; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    sink = x;
    (void)sink;
    printf("%.1f\n", now_ms() - start);
    return 0;
}
