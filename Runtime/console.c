/* console.c: console output — the Xen PV console ring + event channel, plus the arch's ring-less channels (arch_console_write). */
#include "os.h"
#include "hypervisor.h"
#include "events.h"
#include <xen/io/console.h>

/* Yields before giving up on a full ring whose backend does not drain it (no xenconsoled yet). */
#define RING_FULL_YIELDS 1000

static struct xencons_interface *ring;
static uint32_t ring_evtchn;

void init_console(void)
{
    if (boot.xen && boot.console_pfn) {
        ring = pfn_to_virt(boot.console_pfn);
        ring_evtchn = boot.console_evtchn;
    }
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
    arch_console_write(buf, len);
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
