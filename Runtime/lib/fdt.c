/* fdt.c: a read-only walk over a flattened device tree (big-endian v17 format) for /chosen/bootargs and the Xen hypervisor node. */
#include "fdt.h"

#define FDT_MAGIC 0xd00dfeedu
#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE 2u
#define FDT_PROP 3u
#define FDT_NOP 4u
#define FDT_END 9u
#define MAX_DEPTH 16

/* The header's fields, in its order. */
enum { H_MAGIC, H_TOTALSIZE, H_OFF_STRUCT, H_OFF_STRINGS, H_OFF_RSVMAP, H_VERSION, H_LAST_COMP, H_BOOT_CPU,
       H_SIZE_STRINGS, H_SIZE_STRUCT };

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int str_eq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static size_t str_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n])
        n++;
    return n;
}

/* Whether a NUL-separated string list (a "compatible" value) holds `want`. */
static int list_has(const char *list, size_t len, const char *want)
{
    size_t off = 0;
    while (off < len) {
        size_t n = str_len(list + off, len - off);
        if (n < len - off && str_eq(list + off, want))
            return 1;
        off += n + 1;
    }
    return 0;
}

/* Reads `cells` 32-bit cells as one number (1 or 2 cells). */
static uint64_t read_cells(const uint8_t *p, uint32_t cells)
{
    return cells == 2 ? (uint64_t)be32(p) << 32 | be32(p + 4) : be32(p);
}

int fdt_scan(const void *fdt, struct fdt_facts *facts)
{
    *facts = (struct fdt_facts){ 0 };
    const uint8_t *base = fdt;
    if (!base || ((uintptr_t)base & 3) || be32(base + 4 * H_MAGIC) != FDT_MAGIC || be32(base + 4 * H_VERSION) < 16)
        return -1;
    uint32_t total = be32(base + 4 * H_TOTALSIZE);
    uint32_t off_struct = be32(base + 4 * H_OFF_STRUCT), size_struct = be32(base + 4 * H_SIZE_STRUCT);
    uint32_t off_strings = be32(base + 4 * H_OFF_STRINGS), size_strings = be32(base + 4 * H_SIZE_STRINGS);
    if (off_struct > total || size_struct > total - off_struct || off_strings > total || size_strings > total - off_strings)
        return -1;
    const uint8_t *p = base + off_struct, *end = p + size_struct;
    const char *strings = (const char *)base + off_strings;
    uint32_t addr_cells = 2, size_cells = 2;    /* the root's, defaults per the spec */
    int depth = 0, in_chosen = 0;
    /* per open node: is it the Xen node; its reg and interrupts properties */
    const uint8_t *reg = NULL, *irq = NULL;
    uint32_t reg_len = 0, irq_len = 0;
    int xen_node_depth = -1;
    while (p + 4 <= end) {
        uint32_t token = be32(p);
        p += 4;
        if (token == FDT_BEGIN_NODE) {
            const char *name = (const char *)p;
            size_t n = str_len(name, (size_t)(end - p));
            p += (n + 4) & ~(size_t)3;            /* name + NUL, padded to 4 */
            depth++;
            if (depth > MAX_DEPTH)
                return -1;
            in_chosen = depth == 2 && str_eq(name, "chosen");
            if (xen_node_depth < 0)
                reg = irq = NULL;
        } else if (token == FDT_END_NODE) {
            if (depth == xen_node_depth) {
                if (reg && reg_len >= 4 * (addr_cells + size_cells) && addr_cells <= 2 && size_cells <= 2) {
                    facts->xen_grant_base = read_cells(reg, addr_cells);
                    facts->xen_grant_size = read_cells(reg + 4 * addr_cells, size_cells);
                }
                if (irq && irq_len >= 12 && be32(irq) == 1) {  /* GIC binding: <type (1 = PPI), number, flags> */
                    facts->xen_evtchn_ppi = be32(irq + 4);
                    facts->xen_evtchn_irq = 16 + facts->xen_evtchn_ppi;
                }
                xen_node_depth = -2;              /* the first Xen node only */
            }
            depth--;
            in_chosen = 0;
            if (depth < 0)
                return -1;
        } else if (token == FDT_PROP) {
            if (p + 8 > end)
                return -1;
            uint32_t len = be32(p), name_off = be32(p + 4);
            const uint8_t *value = p + 8;
            if (name_off >= size_strings || len > (uint32_t)(end - value))
                return -1;
            p = value + ((len + 3) & ~3u);
            const char *name = strings + name_off;
            if (depth == 1 && len == 4 && str_eq(name, "#address-cells"))
                addr_cells = be32(value);
            else if (depth == 1 && len == 4 && str_eq(name, "#size-cells"))
                size_cells = be32(value);
            else if (in_chosen && str_eq(name, "bootargs") && len > 0 && value[len - 1] == 0)
                facts->bootargs = (const char *)value;
            else if (xen_node_depth == -1 && str_eq(name, "compatible") && list_has((const char *)value, len, "xen,xen")) {
                facts->xen = 1;
                xen_node_depth = depth;
            } else if (str_eq(name, "reg")) {
                reg = value;
                reg_len = len;
            } else if (str_eq(name, "interrupts")) {
                irq = value;
                irq_len = len;
            }
        } else if (token == FDT_NOP) {
            continue;
        } else if (token == FDT_END) {
            return 0;
        } else {
            return -1;
        }
    }
    return -1;
}
