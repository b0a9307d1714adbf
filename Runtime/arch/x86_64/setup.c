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

#define PTE_FRAME_MASK 0x000ffffffffff000ull
#define PTE_PRESENT 0x001ull
#define PTE_DATA 0x063ull                  /* present, writable, accessed, dirty */
#define PTE_READ_ONLY 0x021ull             /* present, accessed */
#define PTE_TABLE 0x067ull                 /* present, writable, user, accessed, dirty: a lower table */
#define PV_L1_PAGES 512ull                 /* pages one L1 table maps (2 MiB) */

/* PV: the virtual address of the page table an entry points to (page tables are in the bootstrap map). */
static uint64_t *pv_table_of(uint64_t entry) { return pfn_to_virt(mfn_to_pfn((entry & PTE_FRAME_MASK) >> PAGE_SHIFT)); }

/*
 * PV: the heap may use every page of the domain, like PVH's. Xen maps (virtual == pseudo-physical,
 * VIRT_BASE 0) only the bootstrap area: the image, start info, store and console pages, p2m
 * list, page tables and boot stack, then at least 512 KiB of padding, up to a 4 MiB boundary.
 * The pages after the boot stack are free; RAM beyond the mapped area gets new L1 tables, taken
 * from the first free (mapped) pages: filled while writable, made read-only, then hooked into
 * the L2 table with mmu_update, as Xen requires of a page table. The heap gets what follows.
 */
static void find_heap_extra_pv(const start_info_t *si)
{
    boot.heap_note = "no RAM after the boot area";
    uint64_t first_free = virt_to_pfn((const void *)si->pt_base) + si->nr_pt_frames + 1; /* + boot stack */
    uint64_t last = si->nr_pages;                                                      /* pages [first_free, last) */
    uint64_t *l4 = (uint64_t *)si->pt_base;
    if (!(l4[0] & PTE_PRESENT) || last <= first_free)
        return;
    uint64_t *l3 = pv_table_of(l4[0]);
    if (!(l3[0] & PTE_PRESENT) || last > (1ull << (30 - PAGE_SHIFT)))
        last = 1ull << (30 - PAGE_SHIFT); /* one L2: the first GiB */
    uint64_t *l2 = pv_table_of(l3[0]);
    uint64_t l2_machine = pfn_to_mfn(virt_to_pfn(l2)) << PAGE_SHIFT;
    uint64_t next_table = first_free; /* the L1 tables come first */
    for (uint64_t region = 0; region * PV_L1_PAGES < last; region++) {
        uint64_t from = region * PV_L1_PAGES;
        if (l2[region] & PTE_PRESENT)
            continue; /* mapped by the bootstrap tables */
        if (!(l2[next_table / PV_L1_PAGES] & PTE_PRESENT) || next_table >= from) {
            last = from; /* no mapped page left for a table: the heap stops here */
            break;
        }
        uint64_t *table = pfn_to_virt(next_table);
        for (uint64_t i = 0; i < PV_L1_PAGES; i++)
            table[i] = from + i < last ? pfn_to_mfn(from + i) << PAGE_SHIFT | PTE_DATA : 0;
        uint64_t table_mfn = pfn_to_mfn(next_table);
        struct mmu_update hook = { .ptr = (l2_machine + region * sizeof(uint64_t)) | MMU_NORMAL_PT_UPDATE,
                                   .val = table_mfn << PAGE_SHIFT | PTE_TABLE };
        unsigned done = 0;
        next_table++; /* spent even on failure: it may be read-only now */
        if (HYPERVISOR_update_va_mapping((unsigned long)table, table_mfn << PAGE_SHIFT | PTE_READ_ONLY, UVMF_INVLPG) != 0
            || HYPERVISOR_mmu_update(&hook, 1, &done, DOMID_SELF) != 0) {
            boot.heap_note = "page tables for more RAM refused";
            last = from;
            break;
        }
    }
    uint64_t start = next_table << PAGE_SHIFT, end = last << PAGE_SHIFT;
    if (end > start + PAGE_SIZE) {
        boot.heap_extra_start = start;
        boot.heap_extra_end = end;
        boot.heap_note = NULL;
    }
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
    find_heap_extra_pv(si);
}

/* Frames libxenguest populates for a PVH domain outside its RAM (X86_HVM_NR_SPECIAL_PAGES in
 * Xen's xenguest.h: console, store, ident_pt, ... just below the MMIO hole). */
#define XEN_HVM_SPECIAL_PAGES 8
/* Most entries of the memory map read from Xen (init-xenstore-domain sets 2 or 3). */
#define XEN_MEMORY_MAP_MAX 16

/* One entry of the memory map XENMEM_memory_map returns (the e820 layout). */
struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

/*
 * Under Xen, without a start-info memory map: where the populated RAM holding `start` ends.
 * The domain's reservation counts every populated frame, including the special pages the
 * toolstack populated outside RAM (the memory map's reserved entries), and RAM is populated
 * from guest-physical 0 upwards with no hole (no device model, no VGA hole). So RAM ends at
 * (reservation - pages of reserved entries), and never past the memory map's RAM entry (which
 * covers --maxmem, more than is populated). Taking the whole reservation as RAM (the old
 * rule) ran the heap 8 pages past the populated RAM; see docs/stubdom.md.
 */
/* What xen_pvh_ram_end and check_past_ram found, for arch_report's line. */
static uint64_t xen_reservation_pages, past_ram_checked, past_ram_unbacked, ram_end_found;

static uint64_t xen_pvh_ram_end(uint64_t start)
{
    domid_t self = DOMID_SELF;
    long pages = HYPERVISOR_memory_op(XENMEM_current_reservation, &self);
    if (pages <= 0)
        return 0;
    static struct e820_entry map[XEN_MEMORY_MAP_MAX];
    struct xen_memory_map memmap = { .nr_entries = XEN_MEMORY_MAP_MAX };
    set_xen_guest_handle(memmap.buffer, map);
    uint64_t outside_ram = 0, map_ram_end = 0;
    if (HYPERVISOR_memory_op(XENMEM_memory_map, &memmap) == 0 && memmap.nr_entries <= XEN_MEMORY_MAP_MAX) {
        for (unsigned i = 0; i < memmap.nr_entries; i++) {
            if (map[i].type != XEN_HVM_MEMMAP_TYPE_RAM)
                outside_ram += map[i].size >> PAGE_SHIFT;
            else if (map[i].addr <= start && start < map[i].addr + map[i].size)
                map_ram_end = map[i].addr + map[i].size;
        }
    } else {
        outside_ram = XEN_HVM_SPECIAL_PAGES; /* no map: assume libxenguest's layout */
    }
    xen_reservation_pages = (uint64_t)pages;
    if ((uint64_t)pages <= outside_ram)
        return 0;
    uint64_t end = ((uint64_t)pages - outside_ram) << PAGE_SHIFT;
    return map_ram_end && map_ram_end < end ? map_ram_end : end;
}

/*
 * Whether the page at `addr` is RAM: a write must read back. A guest-physical frame that is not
 * populated reads as all ones under Xen (its accesses are emulated as MMIO with nobody behind
 * them) and drops writes; QEMU's unassigned memory does not keep them either.
 */
static int page_holds_data(uint64_t addr)
{
    volatile uint64_t *word = (volatile uint64_t *)(uintptr_t)addr;
    uint64_t saved = *word;
    *word = 0x5a5a5a5a5a5a5a5aull;
    int ok = *word == 0x5a5a5a5a5a5a5a5aull;
    *word = 0xa5a5a5a5a5a5a5a5ull;
    ok = ok && *word == 0xa5a5a5a5a5a5a5a5ull;
    *word = saved;
    return ok;
}

/*
 * The end of the RAM really present in [start, end): `end` when its last page holds data, else
 * the end of the highest page that does, found by bisection (RAM is one range from `start`).
 */
static uint64_t probe_ram_end(uint64_t start, uint64_t end)
{
    uint64_t first = (start + PAGE_SIZE - 1) >> PAGE_SHIFT, last = end >> PAGE_SHIFT; /* pages [first, last) */
    if (last <= first || page_holds_data((last - 1) << PAGE_SHIFT))
        return end;
    boot.heap_probe_shrank = 1;
    uint64_t good = first, bad = last - 1; /* invariant: pages below `good` hold data, page `bad` does not */
    if (!page_holds_data(first << PAGE_SHIFT))
        return start;
    while (bad - good > 1) {
        uint64_t mid = good + (bad - good) / 2;
        if (page_holds_data(mid << PAGE_SHIFT))
            good = mid;
        else
            bad = mid;
    }
    return (good + 1) << PAGE_SHIFT;
}

/*
 * The pages the reservation reaches past the end of RAM (where the heap used to end): checked
 * like the heap's last page, and counted for the boot report (at most PAST_RAM_CHECK of them).
 */
#define PAST_RAM_CHECK 64
static void check_past_ram(uint64_t ram_end)
{
    ram_end_found = ram_end;
    for (uint64_t page = ram_end >> PAGE_SHIFT; page < xen_reservation_pages && past_ram_checked < PAST_RAM_CHECK; page++) {
        past_ram_checked++;
        past_ram_unbacked += !page_holds_data(page << PAGE_SHIFT);
    }
}

/*
 * PVH: the heap may grow into the RAM after the image (identity-mapped by boot.S up to 4 GiB),
 * past everything Xen or the loader placed there (start info, command line, memory map), up to
 * the end of that RAM: the RAM entry of the start-info memory map when there is one (QEMU), else
 * what Xen says (init-xenstore-domain gives a PVH domain no start-info memory map; see
 * xen_pvh_ram_end). Either way the last page is checked to hold data before the heap trusts it.
 * Needs the hypercall page, and must run before shared_info takes a RAM frame of ours.
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
        end = xen_pvh_ram_end(start);
        if (end)
            check_past_ram(end);
    }
    if (end > 0xF0000000ull)
        end = 0xF0000000ull;
    end &= ~(uint64_t)(PAGE_SIZE - 1);
    if (end > start)
        end = probe_ram_end(start, end);
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

/* PVH under Xen: where RAM ends against the reservation, and whether the pages past it keep data. */
void arch_report(void)
{
    if (!xen_reservation_pages)
        return;
    console_puts("xenstore-stubdom: reservation ");
    console_put_dec(xen_reservation_pages);
    console_puts(" pages, RAM ends at ");
    console_put_dec(ram_end_found >> 10);
    console_puts(" KiB; ");
    console_put_dec(past_ram_unbacked);
    console_puts(" of the ");
    console_put_dec(past_ram_checked);
    console_puts(" pages the reservation reaches past it keep no data (not RAM)\n");
}

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
