/* os.h: runtime-internal declarations shared by all facilities (boot state, lifecycle, diagnostics). */
#ifndef OS_H
#define OS_H

#include <stddef.h>
#include <stdint.h>
#include "runtime.h"
#if defined(__x86_64__)
#include "x86_64/arch.h"
#elif defined(__arm__)
#include "arm32/arch.h"
#else
#error "unsupported architecture"
#endif

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/errno.h>

/* What the entry path found; filled by arch_init, read-only afterwards. */
struct boot_state {
    int mode;                       /* enum boot_mode */
    int xen;                        /* hypercalls usable */
    uint32_t xen_cpuid_base;        /* x86: 0x400000xx leaf of the Xen signature, 0 if absent */
    struct start_info *pv_start_info; /* BOOT_MODE_PV only (x86) */
    const void *dtb;                /* BOOT_MODE_ARM: the flattened device tree, NULL if none */
    shared_info_t *shared_info;     /* mapped by arch_init under Xen, else NULL */
    const char *cmdline;            /* never NULL */
    uint64_t console_pfn;           /* PV console ring frame (guest pfn), 0 if none */
    uint32_t console_evtchn;
    uint64_t heap_extra_start;      /* RAM after the image the heap may use: [start, end) */
    uint64_t heap_extra_end;        /* (physical = virtual; 0, 0 if none), set by arch_init */
    const char *heap_note;          /* why there is no extra heap, for the boot line (or NULL) */
    int heap_probe_shrank;          /* the RAM end Xen or the loader gave did not hold data: lowered */
    uint64_t store_pfn;             /* our own Xenstore client ring (HVM param; an ordinary guest's), 0 if none */
    uint32_t store_evtchn;
    uint64_t grant_table_gpfn;      /* where our own grant table frame may be mapped (ARM: the xen,xen region), 0 if unknown */
};

extern struct boot_state boot;

/* Lifecycle, called in this order by start_kernel (main.c). */
void arch_init(void *boot_info, int mode);
void init_console(void);
void init_traps(void);
void init_mm(void);
void init_events(void);
void init_gnttab(void);
void fini_gnttab(void);
void fini_events(void);
void init_restart(void);            /* restart.c: keeps a pristine copy of Swift's .data */
/* Restart in place: the arch's trap state is reset for the next crash (x86: the reporting depth). */
void arch_restart_traps(void);

/* Console helpers for the runtime itself. */
void console_puts(const char *s);
void console_put_hex(uint64_t v);
void console_put_dec(uint64_t v);

/* Reports a fatal runtime error and exits with RT_EXIT_PANIC. */
void rt_panic(const char *msg) __attribute__((noreturn));

/* Platform exit: arch-specific (isa-debug-exit, semihosting, or SCHEDOP_shutdown under Xen). */
void arch_exit(int code) __attribute__((noreturn));

/* Console output that needs no Xen ring (COM1 and port 0xE9 on x86, PL011 on QEMU virt). */
void arch_console_write(const uint8_t *buf, size_t len);
/* The one-line description of the entry path for the boot banner. */
const char *arch_boot_description(void);
/* Prints what arch_init found that the banner does not say (ARM: the device tree's Xen node). */
void arch_report(void);

/* Translations between guest pfns, machine frames and addresses (identity mapped: VIRT_BASE 0 on
 * x86, the guest-physical RAM addresses on ARM). */
static inline void *pfn_to_virt(uint64_t pfn) { return (void *)(uintptr_t)(pfn << PAGE_SHIFT); }
static inline uint64_t virt_to_pfn(const void *va) { return (uintptr_t)va >> PAGE_SHIFT; }
uint64_t pfn_to_mfn(uint64_t pfn);   /* PV: p2m lookup; PVH and ARM: identity */
uint64_t mfn_to_pfn(uint64_t mfn);   /* PV: m2p lookup; PVH and ARM: identity */

/* The C library subset the Embedded Swift runtime links against (lib/). */
void *memset(void *d, int c, size_t n);
void *memcpy(void *restrict d, const void *restrict s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
/* The decimal text of v into buf (room for 21 bytes), NUL-terminated (lib/string.c). */
void rt_decimal(uint64_t v, char *buf);

#endif
