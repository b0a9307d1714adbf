/* gnttab.c: grant tables — map and unmap one foreign page (a guest's store ring, GNTTAB_RESERVED_XENSTORE), and grant our own pages (auto-translated guests). */
#include "os.h"
#include "hypervisor.h"
#include "mm.h"

/*
 * A mapping needs a page of our address space.
 * PV:  one heap page per mapping; host_addr is its virtual address. Its PTE is cleared first
 *      (with a TLB flush: Xen does not flush when a grant mapping replaces a present PTE, so a
 *      stale translation would keep showing the old frame); unmapping clears it again, and the
 *      original frame is mapped back from the p2m afterwards.
 * PVH: a slot of the grant window, guest-physical frames that are never RAM (GRANT_WINDOW_BASE,
 *      inside the boot identity map, far above the domain's RAM and special pages): the grant
 *      takes an empty gfn and leaves it empty again, so RAM is never given back and repopulated.
 *      (It used to be: a heap page's RAM given back with decrease_reservation, the grant mapped
 *      at its gfn, the RAM repopulated on unmap. The x86 soak of 2026-12-06 triple-faulted in 3
 *      of 4 PVH boots within 50 guest create/destroy cycles with that sequence; see
 *      docs/stubdom.md.)
 * ARM (auto-translated too): still the heap page given back and repopulated.
 */
#define GRANT_WINDOW_BASE_PFN 0xE0000ull /* 3.5 GiB */
#define GRANT_WINDOW_PAGES 4096           /* rings mapped at once: more than domains exist */
static uint64_t grant_window_used[GRANT_WINDOW_PAGES / 64];

static int use_grant_window(void)
{
#if defined(__x86_64__)
    return boot.mode == BOOT_MODE_PVH;
#else
    return 0;
#endif
}

static void *grant_window_take(void)
{
    for (unsigned i = 0; i < GRANT_WINDOW_PAGES; i++)
        if (!(grant_window_used[i / 64] >> (i % 64) & 1)) {
            grant_window_used[i / 64] |= 1ull << (i % 64);
            return pfn_to_virt(GRANT_WINDOW_BASE_PFN + i);
        }
    return NULL;
}

static int grant_window_slot(const void *addr)
{
    uint64_t pfn = virt_to_pfn(addr);
    return pfn >= GRANT_WINDOW_BASE_PFN && pfn < GRANT_WINDOW_BASE_PFN + GRANT_WINDOW_PAGES
               ? (int)(pfn - GRANT_WINDOW_BASE_PFN) : -1;
}

static void grant_window_release(const void *addr)
{
    int slot = grant_window_slot(addr);
    if (slot >= 0)
        grant_window_used[slot / 64] &= ~(1ull << (slot % 64));
}

_Static_assert(GNTTAB_XENSTORE_REF == GNTTAB_RESERVED_XENSTORE, "runtime.h matches xen/grant_table.h");

static int ready;

void init_gnttab(void) { ready = boot.xen; }

void fini_gnttab(void) { ready = 0; }

#if defined(__x86_64__)
/* PV: maps machine frame `mfn` writable at the virtual address `page`. */
static int pv_map_frame(void *page, uint64_t mfn)
{
    uint64_t pte = (mfn << PAGE_SHIFT) | 0x63; /* present, writable, accessed, dirty */
    return (int)HYPERVISOR_update_va_mapping((unsigned long)page, pte, UVMF_INVLPG);
}

/* PV: maps our own frame `gfn` back at its address (after an unmap or a failed map). */
static int pv_restore(void *page) { return pv_map_frame(page, pfn_to_mfn(virt_to_pfn(page))); }

/* PV: removes the heap page's own mapping so the grant can take its place. */
static int pv_clear(void *page) { return (int)HYPERVISOR_update_va_mapping((unsigned long)page, 0, UVMF_INVLPG); }
#else
/* Only x86 has PV guests. */
static int pv_restore(void *page) { (void)page; return -XEN_ENOSYS; }
static int pv_clear(void *page) { (void)page; return -XEN_ENOSYS; }
#endif

static int pvh_reservation(unsigned cmd, xen_pfn_t gfn)
{
    struct xen_memory_reservation r = { .nr_extents = 1, .extent_order = 0, .domid = DOMID_SELF };
    set_xen_guest_handle(r.extent_start, &gfn);
    return HYPERVISOR_memory_op(cmd, &r) == 1 ? 0 : -XEN_ENOMEM;
}

void *gnttab_map_foreign(uint16_t domid, uint32_t ref, uint32_t *handle)
{
    if (!ready)
        return NULL;
    rt_check_cpu_structures("before a grant map");
    if (use_grant_window()) {
        void *slot = grant_window_take();
        if (!slot)
            return NULL;
        struct gnttab_map_grant_ref op = {
            .host_addr = (uint64_t)virt_to_pfn(slot) << PAGE_SHIFT,
            .flags = GNTMAP_host_map,
            .ref = ref,
            .dom = domid,
        };
        if (HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, &op, 1) != 0 || op.status != GNTST_okay) {
            grant_window_release(slot);
            return NULL;
        }
        *handle = op.handle;
        rt_check_cpu_structures("after a grant map");
        return slot;
    }
    void *page = mm_alloc_pages(1);
    if (!page)
        return NULL;
    uint64_t gfn = virt_to_pfn(page);
    int rc = boot.mode == BOOT_MODE_PV
                 ? pv_clear(page)
                 : pvh_reservation(XENMEM_decrease_reservation, gfn);
    if (rc != 0) {
        mm_free_pages(page, 1);
        return NULL;
    }
    struct gnttab_map_grant_ref op = {
        .host_addr = boot.mode == BOOT_MODE_PV ? (uint64_t)(uintptr_t)page : (uint64_t)gfn << PAGE_SHIFT,
        .flags = GNTMAP_host_map,
        .ref = ref,
        .dom = domid,
    };
    if (HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, &op, 1) != 0 || op.status != GNTST_okay) {
        if ((boot.mode == BOOT_MODE_PV ? pv_restore(page) : pvh_reservation(XENMEM_populate_physmap, gfn)) == 0)
            mm_free_pages(page, 1); /* otherwise leak it: its address space is unusable */
        return NULL;
    }
    *handle = op.handle;
    rt_check_cpu_structures("after a grant map");
    return page;
}

int gnttab_unmap_foreign(void *addr, uint32_t handle)
{
    uint64_t gfn = virt_to_pfn(addr);
    rt_check_cpu_structures("before a grant unmap");
    struct gnttab_unmap_grant_ref op = {
        .host_addr = boot.mode == BOOT_MODE_PV ? (uint64_t)(uintptr_t)addr : (uint64_t)gfn << PAGE_SHIFT,
        .dev_bus_addr = 0,
        .handle = handle,
    };
    if (HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, &op, 1) != 0 || op.status != GNTST_okay)
        return -XEN_EINVAL;
    rt_check_cpu_structures("after a grant unmap");
    if (use_grant_window()) {
        grant_window_release(addr);
        return 0;
    }
    int rc = boot.mode == BOOT_MODE_PV ? pv_restore(addr) : pvh_reservation(XENMEM_populate_physmap, gfn);
    rt_check_cpu_structures("after repopulating a grant's page");
    if (rc == 0)
        mm_free_pages(addr, 1); /* otherwise leak the page: its address space is unusable */
    return rc;
}

/*
 * Granting our own pages needs our grant table mapped (its first frame: refs 0-511, v1 entries).
 * Auto-translated guests place it at a guest-physical frame with XENMEM_add_to_physmap:
 *   ARM: inside the xen,xen node's region (boot.grant_table_gpfn from the device tree);
 *   PVH: the frame just below the grant window, never RAM either (OWN_TABLE_PVH_PFN).
 * PV asks for the table's machine frame (GNTTABOP_setup_table) and maps it over a heap page's
 * virtual address. Refs below GNTTAB_NR_RESERVED_ENTRIES belong to the toolstack; refs are handed
 * out once, never reused.
 */
#define GRANT_REFS_PER_FRAME (PAGE_SIZE / sizeof(grant_entry_v1_t))
#define OWN_TABLE_PVH_PFN (GRANT_WINDOW_BASE_PFN - 1)

static grant_entry_v1_t *own_table;
static uint32_t next_ref = GNTTAB_NR_RESERVED_ENTRIES;

static int map_own_table_pv(void)
{
#if defined(__x86_64__)
    xen_pfn_t frame = 0;
    struct gnttab_setup_table setup = { .dom = DOMID_SELF, .nr_frames = 1 };
    set_xen_guest_handle(setup.frame_list, &frame);
    if (HYPERVISOR_grant_table_op(GNTTABOP_setup_table, &setup, 1) != 0 || setup.status != GNTST_okay)
        return -XEN_EINVAL;
    void *page = mm_alloc_pages(1);
    if (!page)
        return -XEN_ENOMEM;
    /* the heap page's own frame stays with us, unmapped: one page, for the image's lifetime */
    int rc = pv_map_frame(page, frame);
    if (rc == 0)
        own_table = page;
    return rc;
#else
    return -XEN_ENOSYS;
#endif
}

static int map_own_table(void)
{
    if (own_table)
        return 0;
    if (!ready)
        return -XEN_ENOSYS;
    if (boot.mode == BOOT_MODE_PV)
        return map_own_table_pv();
    uint64_t gpfn = boot.grant_table_gpfn;
#if defined(__x86_64__)
    gpfn = OWN_TABLE_PVH_PFN;
#endif
    if (!gpfn)
        return -XEN_ENOSYS;
    struct xen_add_to_physmap xatp = {
        .domid = DOMID_SELF,
        .space = XENMAPSPACE_grant_table,
        .idx = 0,
        .gpfn = gpfn,
    };
    int rc = (int)HYPERVISOR_memory_op(XENMEM_add_to_physmap, &xatp);
    if (rc == 0)
        own_table = pfn_to_virt(gpfn);
    return rc;
}

int gnttab_grant_access(uint16_t domid, void *page, uint32_t *ref)
{
    int rc = map_own_table();
    if (rc != 0)
        return rc;
    if (next_ref >= GRANT_REFS_PER_FRAME)
        return -XEN_ENOSPC;
    grant_entry_v1_t *e = &own_table[next_ref];
    e->domid = domid;
    e->frame = (uint32_t)pfn_to_mfn(virt_to_pfn(page));
    wmb(); /* the entry is complete before it becomes valid */
    e->flags = GTF_permit_access;
    *ref = next_ref++;
    return 0;
}
