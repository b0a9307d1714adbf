/* fdt.h: the few facts the runtime reads from a flattened device tree (lib/fdt.c). */
#ifndef FDT_H
#define FDT_H

#include <stddef.h>
#include <stdint.h>

/* What fdt_scan found; fields stay zero/NULL when absent. */
struct fdt_facts {
    const char *bootargs;        /* /chosen/bootargs (points into the tree) */
    int xen;                     /* a node compatible with "xen,xen" exists (/hypervisor) */
    uint64_t xen_grant_base;     /* its first reg region: where Xen wants the grant table mapped */
    uint64_t xen_grant_size;
    uint32_t xen_evtchn_ppi;     /* its interrupt: the event-channel upcall PPI (Xen: 31 - 16 = 15) */
    uint32_t xen_evtchn_irq;     /* the same as a GIC interrupt id (PPI n = id 16 + n) */
};

/* Checks the header of the tree at `fdt` and reads the facts; 0 on success, -1 if it is no valid tree. */
int fdt_scan(const void *fdt, struct fdt_facts *facts);

#endif
