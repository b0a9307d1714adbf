/* gnttab.c: grant tables — map and unmap one foreign page (a guest's store ring, GNTTAB_RESERVED_XENSTORE), and grant our own pages (auto-translated guests). */
#include "os.h"
#include "hypervisor.h"
#include "mm.h"

/*
 * A mapping needs a page of our address space: one heap page is taken per mapping.
 * PV:  host_addr is that virtual address. Its PTE is cleared first (with a TLB flush: Xen
 *      does not flush when a grant mapping replaces a present PTE, so a stale translation
 *      would keep showing the old frame); unmapping clears it again, and the original frame
 *      is mapped back from the p2m afterwards.
 * PVH and ARM (both auto-translated): host_addr is a guest-physical address; the heap page's
 *      RAM is given back to Xen first (decrease_reservation) so the grant can take the gfn, and
 *      repopulated on unmap.
 */

_Static_assert(GNTTAB_XENSTORE_REF == GNTTAB_RESERVED_XENSTORE, "runtime.h matches xen/grant_table.h");

static int ready;

void init_gnttab(void) { ready = boot.xen; }

void fini_gnttab(void) { ready = 0; }

#if defined(__x86_64__)
/* PV: maps our own frame `gfn` back at its address (after an unmap or a failed map). */
static int pv_restore(void *page)
{
    uint64_t pte = (pfn_to_mfn(virt_to_pfn(page)) << PAGE_SHIFT) | 0x63; /* present, writable, accessed, dirty */
    return (int)HYPERVISOR_update_va_mapping((unsigned long)page, pte, UVMF_INVLPG);
}

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
    return page;
}

int gnttab_unmap_foreign(void *addr, uint32_t handle)
{
    uint64_t gfn = virt_to_pfn(addr);
    struct gnttab_unmap_grant_ref op = {
        .host_addr = boot.mode == BOOT_MODE_PV ? (uint64_t)(uintptr_t)addr : (uint64_t)gfn << PAGE_SHIFT,
        .dev_bus_addr = 0,
        .handle = handle,
    };
    if (HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, &op, 1) != 0 || op.status != GNTST_okay)
        return -XEN_EINVAL;
    int rc = boot.mode == BOOT_MODE_PV ? pv_restore(addr) : pvh_reservation(XENMEM_populate_physmap, gfn);
    if (rc == 0)
        mm_free_pages(addr, 1); /* otherwise leak the page: its address space is unusable */
    return rc;
}

/*
 * Granting our own pages needs our grant table mapped: its first frame (refs 0-511, v1 entries)
 * is placed at boot.grant_table_gpfn with XENMEM_add_to_physmap, which auto-translated guests
 * (ARM: inside the xen,xen node's region) do instead of GNTTABOP_setup_table. Refs below
 * GNTTAB_NR_RESERVED_ENTRIES belong to the toolstack; refs are handed out once, never reused.
 */
#define GRANT_REFS_PER_FRAME (PAGE_SIZE / sizeof(grant_entry_v1_t))

static grant_entry_v1_t *own_table;
static uint32_t next_ref = GNTTAB_NR_RESERVED_ENTRIES;

static int map_own_table(void)
{
    if (own_table)
        return 0;
    if (!ready || !boot.grant_table_gpfn || boot.mode == BOOT_MODE_PV)
        return -XEN_ENOSYS;
    struct xen_add_to_physmap xatp = {
        .domid = DOMID_SELF,
        .space = XENMAPSPACE_grant_table,
        .idx = 0,
        .gpfn = boot.grant_table_gpfn,
    };
    int rc = (int)HYPERVISOR_memory_op(XENMEM_add_to_physmap, &xatp);
    if (rc == 0)
        own_table = pfn_to_virt(boot.grant_table_gpfn);
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
