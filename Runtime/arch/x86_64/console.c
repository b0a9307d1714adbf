/* console.c (x86_64): the ring-less console channels — Xen debug port 0xE9 (PVH under Xen) and COM1 (no Xen). */
#include "os.h"

#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THR_EMPTY 0x20
#define XEN_DEBUG_PORT 0xe9

static void com1_putc(uint8_t c)
{
    for (int i = 0; i < 10000 && !(inb(COM1_LSR) & LSR_THR_EMPTY); i++)
        ;
    outb(COM1, c);
}

/*
 * Under Xen, one `rep outsb` per write: Xen's I/O emulation takes many bytes per VM exit, where an
 * `outb` per byte costs one exit each (a crash report: about a thousand). Besides the time, under
 * QEMU's emulated virtualization (make test-xen) a VM exit has been seen, rarely, to leave the
 * guest with the hypervisor's own registers and end it in a triple fault (docs/stubdom.md, issue
 * 15): fewer exits, fewer chances.
 */
static void xen_debug_write(const uint8_t *buf, size_t len)
{
    __asm__ volatile("cld; rep outsb" : "+S"(buf), "+c"(len) : "d"((uint16_t)XEN_DEBUG_PORT) : "memory");
}

void arch_console_write(const uint8_t *buf, size_t len)
{
    if (boot.mode != BOOT_MODE_PVH)
        return; /* PV: the ring is the only console */
    if (boot.xen) {
        xen_debug_write(buf, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n')
            com1_putc('\r');
        com1_putc(buf[i]);
    }
}
