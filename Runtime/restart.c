/* restart.c: restart in place after a crash — Swift's globals and heap start afresh, what Xen holds for us (rings, grant mappings, ports, the disk) stays. */
#include "os.h"
#include "mm.h"

/*
 * The linker scripts gather the Swift objects' .data and .bss between these symbols and leave
 * room at the end of .bss for a pristine copy of that .data, taken before Swift first runs.
 * A restart puts both back as the loader left them, frees the whole Swift heap, and enters
 * Swift again at xenstored_resume on a fresh boot stack. Nothing of the crashed Swift state is
 * trusted; Swift rebuilds from what it made durable (its history store and saved state).
 */
extern char __swift_data_start[], __swift_data_end[], __swift_bss_start[], __swift_bss_end[];
extern char __swift_data_pristine[];
extern char boot_stack_top[];

#if defined(__x86_64__)
#define RT_RESTART_SUPPORTED 1
#else
#define RT_RESTART_SUPPORTED 0
#endif

static int armed;
static uint32_t restarts;
static uint32_t consecutive;            /* crashes since the last completed round */
static uint32_t serving;                /* what Swift said it was serving (0 = nothing) */
static uint32_t culprits[2];            /* what it was serving at the last two crashes */

static void *kept_region;
static size_t kept_region_bytes;

struct kept_ring {
    int used;
    uint16_t domid;
    void *page;
    uint32_t handle;
    uint32_t port;
};
static struct kept_ring kept_rings[RT_KEPT_RINGS];

void init_restart(void)
{
    memcpy(__swift_data_pristine, __swift_data_start, (size_t)(__swift_data_end - __swift_data_start));
}

void rt_restart_arm(int on) { armed = on; }
uint32_t rt_restart_count(void) { return restarts; }
uint32_t rt_consecutive_crashes(void) { return consecutive; }
void rt_serving(uint32_t what) { serving = what; }
void rt_round_completed(void) { consecutive = 0; }
uint32_t rt_crash_culprit(int which) { return which == 0 ? culprits[0] : which == 1 ? culprits[1] : 0; }

void *rt_kept_region(size_t bytes)
{
    if (kept_region)
        return bytes <= kept_region_bytes ? kept_region : NULL;
    size_t pages = (bytes + PAGE_SIZE - 1) / PAGE_SIZE;
    kept_region = mm_alloc_pages(pages);   /* the runtime's own pages: kept by mm_reset_swift_heap */
    if (kept_region)
        kept_region_bytes = pages * PAGE_SIZE;
    return kept_region;
}

void rt_kept_shrink(size_t bytes)
{
    size_t keep = (bytes + PAGE_SIZE - 1) / PAGE_SIZE;
    if (!kept_region || keep * PAGE_SIZE >= kept_region_bytes)
        return;
    mm_free_pages((uint8_t *)kept_region + keep * PAGE_SIZE, kept_region_bytes / PAGE_SIZE - keep);
    kept_region_bytes = keep * PAGE_SIZE;
}

int rt_first_time(unsigned what)
{
    static uint32_t asked;   /* the runtime's own .bss: a restart in place keeps it */
    if (what >= 32 || (asked >> what) & 1)
        return 0;
    asked |= 1u << what;
    return 1;
}

int rt_ring_keep(uint16_t domid, void *page, uint32_t handle, uint32_t port)
{
    rt_ring_forget(domid);
    for (unsigned i = 0; i < RT_KEPT_RINGS; i++) {
        if (kept_rings[i].used)
            continue;
        kept_rings[i] = (struct kept_ring){ .used = 1, .domid = domid, .page = page, .handle = handle, .port = port };
        return 0;
    }
    return -XEN_ENOSPC;
}

void rt_ring_forget(uint16_t domid)
{
    for (unsigned i = 0; i < RT_KEPT_RINGS; i++)
        if (kept_rings[i].used && kept_rings[i].domid == domid)
            kept_rings[i].used = 0;
}

void *rt_ring_find(uint16_t domid, uint32_t *handle, uint32_t *port)
{
    for (unsigned i = 0; i < RT_KEPT_RINGS; i++) {
        if (kept_rings[i].used && kept_rings[i].domid == domid) {
            *handle = kept_rings[i].handle;
            *port = kept_rings[i].port;
            return kept_rings[i].page;
        }
    }
    return NULL;
}

uint16_t rt_ring_kept_domid(unsigned index)
{
    return index < RT_KEPT_RINGS && kept_rings[index].used ? kept_rings[index].domid : RT_NO_DOMID;
}

/* Runs on a fresh boot stack: Swift's memory as the loader left it, then Swift again. */
static void restart_entry(void) __attribute__((noreturn, used));
static void restart_entry(void)
{
    memcpy(__swift_data_start, __swift_data_pristine, (size_t)(__swift_data_end - __swift_data_start));
    memset(__swift_bss_start, 0, (size_t)(__swift_bss_end - __swift_bss_start));
    mm_reset_swift_heap();
    int code = xenstored_resume(boot.cmdline);
    fini_gnttab();
    fini_events();
    rt_exit(code);
}

void rt_crash(int code)
{
    /* x86_64 only: the ARM image serves dom0 over a vchan as an ordinary guest (no restart yet) */
    if (!armed || !RT_RESTART_SUPPORTED) {
        console_puts("*** exit code ");
        console_put_dec((uint64_t)code);
        console_puts("\n");
        rt_exit(code);
    }
    consecutive++;
    culprits[1] = culprits[0];
    culprits[0] = serving;
    if (consecutive > RT_RESTART_LIMIT) {
        console_puts("*** crash loop: ");
        console_put_dec(consecutive);
        console_puts(" crashes without completing a round in between; giving up (exit code ");
        console_put_dec(RT_EXIT_CRASH_LOOP);
        console_puts(", the crash's own code was ");
        console_put_dec((uint64_t)code);
        console_puts(")\n");
        rt_exit(RT_EXIT_CRASH_LOOP);
    }
    restarts++;
    serving = 0;
    console_puts("*** restarting in place (restart ");
    console_put_dec(restarts);
    console_puts(", crash code ");
    console_put_dec((uint64_t)code);
    console_puts(")\n");
    arch_restart_traps();
#if defined(__x86_64__)
    /* the crash's stack (or the trap's IST stack) is abandoned; nothing returns here */
    __asm__ volatile("mov %0, %%rsp\n\txor %%ebp, %%ebp\n\tcall restart_entry\n\tud2"
                     :: "r"(boot_stack_top) : "memory");
#endif
    rt_exit(code);
}
