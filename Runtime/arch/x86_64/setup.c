/* setup.c: x86_64 boot-time discovery — Xen or not, start_info parsing, shared_info/console mapping — and the platform exit. */
#include "os.h"
#include "hypervisor.h"
#include <xen/arch-x86/hvm/start_info.h>

struct boot_state boot = { .cmdline = "" };

/* A page of address space reserved for Xen's shared_info (its original frame is given up). */
static uint8_t shared_info_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE), section(".bss.shared_info")));

/* Port of QEMU's isa-debug-exit device; writing c makes QEMU exit with status (c << 1) | 1. */
#define ISA_DEBUG_EXIT_PORT 0xf4

/* Finds Xen's CPUID leaves ("XenVMMXenVMM"); 0 if not running on Xen. */
static uint32_t find_xen_cpuid_base(void)
{
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!(c & (1u << 31))) /* no hypervisor present bit */
        return 0;
    for (uint32_t base = 0x40000000; base < 0x40010000; base += 0x100) {
        cpuid(base, &a, &b, &c, &d);
        if (b == 0x566e6558 && c == 0x65584d4d && d == 0x4d4d566e && a - base >= 2)
            return base;
    }
    return 0;
}

uint64_t pfn_to_mfn(uint64_t pfn)
{
    if (boot.mode == BOOT_MODE_PV)
        return ((const unsigned long *)boot.pv_start_info->mfn_list)[pfn];
    return pfn;
}

uint64_t mfn_to_pfn(uint64_t mfn)
{
    if (boot.mode == BOOT_MODE_PV)
        return ((const unsigned long *)MACH2PHYS_VIRT_START)[mfn];
    return mfn;
}

static void setup_pv(start_info_t *si)
{
    boot.pv_start_info = si;
    boot.xen = 1;
    boot.cmdline = (const char *)si->cmd_line;
    /* shared_info is given as a machine address: map it over our reserved page */
    uint64_t pte = si->shared_info | 0x63; /* present, writable, accessed, dirty */
    if (HYPERVISOR_update_va_mapping((unsigned long)shared_info_page, pte, UVMF_INVLPG) == 0)
        boot.shared_info = (shared_info_t *)shared_info_page;
    boot.console_pfn = mfn_to_pfn(si->console.domU.mfn);
    boot.console_evtchn = si->console.domU.evtchn;
}

/*
 * PVH: the heap may grow into the RAM after the image (identity-mapped by boot.S up to 4 GiB),
 * past everything Xen or the loader placed there (start info, command line, memory map), up to
 * the end of that RAM: the RAM entry of the memory map when there is one (QEMU), else the
 * domain's reservation (init-xenstore-domain gives a PVH domain no memory map). Needs the
 * hypercall page for the latter.
 */
static void find_heap_extra(const struct hvm_start_info *si)
{
    extern char _end[];
    boot.heap_note = "no start info";
    if (!si || si->magic != XEN_HVM_START_MAGIC_VALUE)
        return;
    int has_map = si->version >= 1 && si->memmap_paddr && si->memmap_entries;
    const struct hvm_memmap_table_entry *map = has_map ? (const void *)(uintptr_t)si->memmap_paddr : NULL;
    uint64_t start = (uint64_t)(uintptr_t)_end;
    uint64_t ends[3] = {
        (uint64_t)(uintptr_t)si + sizeof(*si),
        has_map ? si->memmap_paddr + si->memmap_entries * sizeof(*map) : 0,
        si->cmdline_paddr ? si->cmdline_paddr + strlen((const char *)(uintptr_t)si->cmdline_paddr) + 1 : 0,
    };
    for (int i = 0; i < 3; i++)
        if (ends[i] > start && ends[i] < (1ull << 32))
            start = ends[i];
    boot.heap_note = "boot modules present";
    if (si->nr_modules)
        return; /* modules could lie anywhere: do not guess, keep the static heap */
    uint64_t end = 0;
    if (has_map) {
        for (uint32_t i = 0; i < si->memmap_entries; i++)
            if (map[i].type == XEN_HVM_MEMMAP_TYPE_RAM && map[i].addr <= start && start < map[i].addr + map[i].size)
                end = map[i].addr + map[i].size;
    } else if (boot.xen) {
        /*
         * libxenguest populates a PVH domain's RAM from guest-physical 0 upwards, below the MMIO
         * hole; its special pages (console, store) lie outside that range. RAM therefore ends at
         * the reservation's size at the latest: stopping there can undercount (a populate hole
         * below the image), never overrun.
         */
        domid_t self = DOMID_SELF;
        long pages = HYPERVISOR_memory_op(XENMEM_current_reservation, &self);
        if (pages > 0)
            end = (uint64_t)pages << PAGE_SHIFT;
    }
    if (end > 0xF0000000ull)
        end = 0xF0000000ull;
    boot.heap_note = "no RAM after the image";
    if (end > start + PAGE_SIZE) {
        boot.heap_extra_start = start;
        boot.heap_extra_end = end;
        boot.heap_note = NULL;
    }
}

static void setup_pvh(const struct hvm_start_info *si)
{
    if (si && si->magic == XEN_HVM_START_MAGIC_VALUE && si->cmdline_paddr)
        boot.cmdline = (const char *)(uintptr_t)si->cmdline_paddr;
    boot.xen_cpuid_base = find_xen_cpuid_base();
    if (boot.xen_cpuid_base) {
        hypervisor_install_page(boot.xen_cpuid_base);
        boot.xen = 1;
    }
    find_heap_extra(si);
    if (!boot.xen)
        return; /* QEMU without Xen: COM1 and isa-debug-exit only */
    hvm_setup_shared_pages(shared_info_page);
}

const char *arch_boot_description(void) { return boot.mode == BOOT_MODE_PV ? "PV entry" : "PVH entry"; }

/* The banner says everything x86 found. */
void arch_report(void) {}

void arch_init(void *boot_info, int mode)
{
    boot.mode = mode;
    if (mode == BOOT_MODE_PV)
        setup_pv(boot_info);
    else
        setup_pvh(boot_info);
}

void arch_exit(int code)
{
    if (boot.xen) {
        struct sched_shutdown sd = { .reason = code == 0 ? SHUTDOWN_poweroff : SHUTDOWN_crash };
        for (;;)
            HYPERVISOR_sched_op(SCHEDOP_shutdown, &sd);
    }
    outl(ISA_DEBUG_EXIT_PORT, (uint32_t)code);
    for (;;)
        __asm__ volatile("cli; hlt");
}
