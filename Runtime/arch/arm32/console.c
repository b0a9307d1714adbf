/* console.c (arm32): the ring-less console channel — QEMU virt's PL011 UART at 0x09000000, used only without Xen. */
#include "os.h"

#define PL011_BASE 0x09000000u
#define PL011_DR (*(volatile uint32_t *)(PL011_BASE + 0x00))
#define PL011_FR (*(volatile uint32_t *)(PL011_BASE + 0x18))
#define FR_TXFF (1u << 5)

static void pl011_putc(uint8_t c)
{
    for (int i = 0; i < 100000 && (PL011_FR & FR_TXFF); i++)
        ;
    PL011_DR = c;
}

void arch_console_write(const uint8_t *buf, size_t len)
{
    if (boot.xen)
        return; /* under Xen there is no UART for us: the PV console ring is the console */
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n')
            pl011_putc('\r');
        pl011_putc(buf[i]);
    }
}
