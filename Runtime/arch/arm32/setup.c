/* setup.c (arm32): boot-time discovery — the device tree's Xen node and bootargs, shared_info and console ring from Xen — and the platform exit. */
#include "os.h"
#include "hypervisor.h"
#include "fdt.h"

struct boot_state boot = { .cmdline = "" };

/* A page of RAM whose frame Xen replaces with shared_info (XENMAPSPACE_shared_info). */
static uint8_t shared_info_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE), section(".bss.shared_info")));

/* Guest RAM as both Xen on ARM (GUEST_RAM0_BASE) and QEMU virt place it; a device tree is looked for only there. */
#define RAM_BASE 0x40000000u
#define RAM_END  0x80000000u

/* Semihosting (QEMU -semihosting): SYS_EXIT_EXTENDED makes QEMU exit with the given status. */
#define SEMIHOSTING_SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static struct fdt_facts facts;

uint64_t pfn_to_mfn(uint64_t pfn) { return pfn; }
uint64_t mfn_to_pfn(uint64_t mfn) { return mfn; }

const char *arch_boot_description(void) { return "arm32 zImage entry"; }

static void setup_xen(void)
{
    boot.xen = 1;
    hvm_setup_shared_pages(shared_info_page);
    uint64_t pfn = 0, port = 0;
    if (hvm_get_param(HVM_PARAM_STORE_PFN, &pfn) == 0 && hvm_get_param(HVM_PARAM_STORE_EVTCHN, &port) == 0) {
        boot.store_pfn = pfn;
        boot.store_evtchn = (uint32_t)port;
    }
    boot.grant_table_gpfn = facts.xen_grant_base >> PAGE_SHIFT;
}

void arch_init(void *dtb, int mode)
{
    boot.mode = mode;
    uintptr_t at = (uintptr_t)dtb;
    if (at >= RAM_BASE && at < RAM_END && fdt_scan(dtb, &facts) == 0) {
        boot.dtb = dtb;
        if (facts.bootargs)
            boot.cmdline = facts.bootargs;
    }
    if (facts.xen)
        setup_xen();
}

/* Reports what the device tree said about Xen (called once the console works). */
void arch_report(void)
{
    if (!boot.dtb) {
        console_puts("arm32: no device tree\n");
        return;
    }
    console_puts("arm32: device tree at ");
    console_put_hex((uintptr_t)boot.dtb);
    if (facts.xen) {
        console_puts(", xen,xen node: grant table region ");
        console_put_hex(facts.xen_grant_base);
        console_puts(" size ");
        console_put_hex(facts.xen_grant_size);
        console_puts(", event upcall PPI ");
        console_put_dec(facts.xen_evtchn_ppi);
        console_puts(" (GIC irq ");
        console_put_dec(facts.xen_evtchn_irq);
        console_puts(", unused: events are polled)");
    }
    console_puts("\n");
}

static long semihosting_call(long op, void *arg)
{
    register long r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("svc #0x123456" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void arch_exit(int code)
{
    if (boot.xen) {
        struct sched_shutdown sd = { .reason = code == 0 ? SHUTDOWN_poweroff : SHUTDOWN_crash };
        for (;;)
            HYPERVISOR_sched_op(SCHEDOP_shutdown, &sd);
    }
    uint32_t block[2] = { ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code };
    semihosting_call(SEMIHOSTING_SYS_EXIT_EXTENDED, block);
    for (;;)
        __asm__ volatile("wfi");
}
