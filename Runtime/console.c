/* console.c: console output — Xen PV console ring + event channel, Xen debug port 0xE9 (PVH), COM1 without Xen. */
#include "os.h"
#include "hypervisor.h"
#include "events.h"
#include <xen/io/console.h>

#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_THR_EMPTY 0x20
#define XEN_DEBUG_PORT 0xe9
/* Yields before giving up on a full ring whose backend does not drain it (no xenconsoled yet). */
#define RING_FULL_YIELDS 1000

static struct xencons_interface *ring;
static uint32_t ring_evtchn;
static int use_com1;
static int use_debug_port;

void init_console(void)
{
    use_com1 = !boot.xen && boot.mode == BOOT_MODE_PVH;
    use_debug_port = boot.xen && boot.mode == BOOT_MODE_PVH;
    if (boot.xen && boot.console_pfn) {
        ring = pfn_to_virt(boot.console_pfn);
        ring_evtchn = boot.console_evtchn;
    }
}

static void com1_putc(uint8_t c)
{
    for (int i = 0; i < 10000 && !(inb(COM1_LSR) & LSR_THR_EMPTY); i++)
        ;
    outb(COM1, c);
}

/* Copies bytes into the output ring, turning "\n" into "\r\n"; waits (bounded) when it is full. */
static void ring_write(const uint8_t *buf, size_t len)
{
    XENCONS_RING_IDX prod = ring->out_prod;
    int yields = 0;
    for (size_t i = 0; i < len; i++) {
        int need = buf[i] == '\n' ? 2 : 1;
        while (prod - ring->out_cons + need > sizeof(ring->out)) {
            wmb();
            ring->out_prod = prod;
            evtchn_send_raw(ring_evtchn);
            if (yields++ >= RING_FULL_YIELDS)
                return; /* nobody reads the console: drop output rather than hang */
            HYPERVISOR_sched_op(SCHEDOP_yield, 0);
        }
        if (buf[i] == '\n')
            ring->out[MASK_XENCONS_IDX(prod++, ring->out)] = '\r';
        ring->out[MASK_XENCONS_IDX(prod++, ring->out)] = buf[i];
    }
    wmb();
    ring->out_prod = prod;
    evtchn_send_raw(ring_evtchn);
}

void console_write(const uint8_t *buf, size_t len)
{
    if (ring)
        ring_write(buf, len);
    for (size_t i = 0; i < len; i++) {
        if (use_debug_port)
            outb(XEN_DEBUG_PORT, buf[i]);
        if (use_com1) {
            if (buf[i] == '\n')
                com1_putc('\r');
            com1_putc(buf[i]);
        }
    }
}

void console_flush(void)
{
    for (int i = 0; ring && i < RING_FULL_YIELDS && ring->out_cons != ring->out_prod; i++)
        HYPERVISOR_sched_op(SCHEDOP_yield, 0);
}

void console_puts(const char *s) { console_write((const uint8_t *)s, strlen(s)); }

void console_put_hex(uint64_t v)
{
    char buf[18] = "0x";
    for (int i = 0; i < 16; i++)
        buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
    console_write((const uint8_t *)buf, sizeof(buf));
}

void console_put_dec(uint64_t v)
{
    char buf[20];
    int n = 0;
    do {
        buf[sizeof(buf) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    console_write((const uint8_t *)buf + sizeof(buf) - n, (size_t)n);
}

/* putchar is what Embedded Swift's print() calls. */
int putchar(int c)
{
    uint8_t b = (uint8_t)c;
    console_write(&b, 1);
    return c;
}
