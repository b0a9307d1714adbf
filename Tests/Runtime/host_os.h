/* host_os.h: stands in for Runtime/include/os.h when the runtime's heap (mm.c) is built on the host for mm_stress.c. */
#ifndef OS_H
#define OS_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#define PAGE_SIZE 4096
#define RT_EXIT_OOM 97

/** The part of the boot state mm.c reads: the RAM after the image the heap may use. */
struct boot_state {
    uint64_t heap_extra_start;
    uint64_t heap_extra_end;
};
extern struct boot_state boot;

void console_puts(const char *s);
void rt_exit(int code) __attribute__((noreturn));
void rt_crash(int code) __attribute__((noreturn));
void rt_panic(const char *msg) __attribute__((noreturn));
#endif
