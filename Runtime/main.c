/* main.c: start_kernel — brings the facilities up in order, runs the Swift image, shuts down with its exit code. */
#include "os.h"

/* boot.S / start.S: the stack start_kernel and the whole image run on. */
extern char boot_stack[], boot_stack_top[];

/* Fills the unused part of the stack with a pattern that rt_stack_peak looks for. */
#define STACK_PAINT 0x5354414b5354414bull   /* "KATSKATS" */
#define STACK_PAINT_MARGIN 64               /* words left alone below the current frame */

static void paint_stack(void)
{
    uint64_t *word = (uint64_t *)(void *)boot_stack;
    uint64_t *below = (uint64_t *)__builtin_frame_address(0) - STACK_PAINT_MARGIN;
    while (word < below)
        *word++ = STACK_PAINT;
}

size_t rt_stack_peak(void)
{
    const uint64_t *word = (const uint64_t *)(void *)boot_stack;
    const uint64_t *top = (const uint64_t *)(void *)boot_stack_top;
    while (word < top && *word == STACK_PAINT)
        word++;
    return (size_t)((const char *)top - (const char *)word);
}

size_t rt_stack_size(void) { return (size_t)(boot_stack_top - boot_stack); }

void start_kernel(void *boot_info, int mode) __attribute__((noreturn));
void start_kernel(void *boot_info, int mode)
{
    paint_stack();
    arch_init(boot_info, mode);
    init_console();
    init_traps();
    init_mm();
    init_events();
    init_gnttab();
    init_restart();
    console_puts("xenstore-stubdom: ");
    console_puts(arch_boot_description());
    console_puts(boot.xen ? ", Xen present" : ", no Xen (QEMU)");
    console_puts(", heap ");
    console_put_dec(mm_heap_size() >> 10);
    if (boot.heap_note) {
        console_puts(" (static only: ");
        console_puts(boot.heap_note);
        console_puts(")");
    }
    if (boot.heap_probe_shrank)
        console_puts(" (lowered: the last pages given as RAM did not keep data)");
    console_puts(" KiB, cmdline '");
    console_puts(boot.cmdline);
    console_puts("'\n");
    arch_report();
    int code = xenstored_main(boot.cmdline);
    fini_gnttab();
    fini_events();
    rt_exit(code);
}

void rt_exit(int code)
{
    console_puts("xenstore-stubdom: exit ");
    console_put_dec((uint64_t)(unsigned)code);
    console_puts("\n");
    console_flush();
    arch_exit(code);
}

void rt_panic(const char *msg)
{
    console_puts("\n*** PANIC: ");
    console_puts(msg);
    console_puts("\n");
    rt_exit(RT_EXIT_PANIC);
}

int boot_mode(void) { return boot.mode; }
int xen_present(void) { return boot.xen; }
const char *boot_cmdline(void) { return boot.cmdline; }
