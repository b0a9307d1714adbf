/* blkfront.c: a Xen virtual block device frontend (blkif) — xenbus handshake through our own store ring, one granted ring page and one granted data page, one request at a time. */
#include "os.h"
#include "hypervisor.h"
#include "events.h"
#include "mm.h"
/* ring.h's barriers */
#define xen_mb() mb()
#define xen_rmb() rmb()
#define xen_wmb() wmb()
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>

/*
 * The toolstack (or dom0 by hand) creates device/vbd/<vdev> with `backend` and `backend-id`; we
 * wait for the backend to reach InitWait, publish ring-ref, event-channel and protocol, switch to
 * Initialised, wait for Connected, read the geometry and switch to Connected. Requests are
 * synchronous: the data page is granted once and reused; completion is awaited by yielding (the
 * port is not in events.c's polled set, so the event loop never sees it).
 */

#define SECTOR 512u                       /* blkif sector numbers are always 512-byte units */
#define HANDSHAKE_STEP_NS 10000000ull     /* xenstore polling interval while waiting */
#define IO_TIMEOUT_NS 10000000000ull

static blkif_front_ring_t ring;
static uint8_t *data_page;
static uint32_t data_ref;
static evtchn_port_t port;
static uint64_t sectors;
static uint32_t sector_size;
static int connected, flush_supported;
static uint64_t next_id;

static void sleep_step(void)
{
    uint64_t until = clock_monotonic_ns() + HANDSHAKE_STEP_NS;
    while (clock_monotonic_ns() < until)
        HYPERVISOR_sched_op(SCHEDOP_yield, 0);
}

/* Formats "device/vbd/<vdev>/<leaf>" or "<dir>/<leaf>". */
static void node(char *buf, size_t size, const char *dir, const char *leaf)
{
    size_t a = strlen(dir), b = strlen(leaf);
    if (a + b + 2 > size) {
        buf[0] = 0;
        return;
    }
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, leaf, b + 1);
}

static int parse(const char *s, uint64_t *v)
{
    uint64_t r = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        r = r * 10 + (uint64_t)(*s - '0');
    }
    *v = r;
    return 0;
}

/* Reads a node, retrying until it exists (and is readable: a node the toolstack is still setting
 * up may not be ours yet) or the deadline passes. */
static int read_wait(const char *path, char *buf, size_t size, uint64_t deadline)
{
    for (;;) {
        int rc = xs_client_read(path, buf, size);
        if ((rc != -XEN_ENOENT && rc != -XEN_EACCES) || clock_monotonic_ns() > deadline)
            return rc;
        sleep_step();
    }
}

static int read_number(const char *path, uint64_t *v, uint64_t deadline)
{
    char buf[24];
    int rc = read_wait(path, buf, sizeof(buf), deadline);
    if (rc < 0)
        return rc;
    return parse(buf, v) == 0 ? 0 : -XEN_EINVAL;
}

static int write_number(const char *path, uint64_t v)
{
    char buf[21];
    rt_decimal(v, buf);
    return xs_client_write(path, buf);
}

/* Waits until the backend's state is `want` (or beyond it, for Connected); fails on Closing/Closed. */
static int wait_backend(const char *state_path, uint64_t want, uint64_t deadline)
{
    for (;;) {
        uint64_t state = 0;
        int rc = read_number(state_path, &state, deadline);
        if (rc != 0)
            return rc;
        if (state == want || (want == XenbusStateInitWait && state == XenbusStateConnected))
            return 0;
        if (state == XenbusStateClosing || state == XenbusStateClosed || clock_monotonic_ns() > deadline)
            return -XEN_ETIMEDOUT;
        sleep_step();
    }
}

static void report(const char *what, int rc)
{
    console_puts("blkfront: ");
    console_puts(what);
    console_puts(" failed, error ");
    console_put_dec((uint64_t)(unsigned)-rc);
    console_puts("\n");
}

int blkfront_open(uint32_t vdev, uint64_t timeout_ns)
{
    if (connected)
        return 0;
    uint64_t deadline = clock_monotonic_ns() + timeout_ns;
    char dir[40] = "device/vbd/", path[160], backend[128];
    rt_decimal(vdev, dir + strlen(dir));
    uint64_t backend_id = 0;
    int rc;
    node(path, sizeof(path), dir, "backend");
    if ((rc = read_wait(path, backend, sizeof(backend), deadline)) < 0) {
        report("finding the device (device/vbd/<vdev>/backend)", rc);
        return rc;
    }
    node(path, sizeof(path), dir, "backend-id");
    if ((rc = read_number(path, &backend_id, deadline)) != 0)
        return report("reading backend-id", rc), rc;
    char backend_state[160];
    node(backend_state, sizeof(backend_state), backend, "state");
    if ((rc = wait_backend(backend_state, XenbusStateInitWait, deadline)) != 0)
        return report("waiting for the backend (InitWait)", rc), rc;

    blkif_sring_t *sring = mm_alloc_pages(1);
    data_page = mm_alloc_pages(1);
    if (!sring || !data_page)
        return -XEN_ENOMEM;
    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&ring, sring, PAGE_SIZE);
    uint32_t ring_ref = 0;
    if ((rc = gnttab_grant_access((uint16_t)backend_id, sring, &ring_ref)) != 0 ||
        (rc = gnttab_grant_access((uint16_t)backend_id, data_page, &data_ref)) != 0)
        return report("granting the ring and data pages", rc), rc;
    struct evtchn_alloc_unbound op = { .dom = DOMID_SELF, .remote_dom = (domid_t)backend_id };
    if ((rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &op)) != 0)
        return report("allocating the event channel", rc), rc;
    port = op.port;

    node(path, sizeof(path), dir, "ring-ref");
    if ((rc = write_number(path, ring_ref)) != 0)
        return report("writing ring-ref", rc), rc;
    node(path, sizeof(path), dir, "event-channel");
    if ((rc = write_number(path, port)) != 0)
        return report("writing event-channel", rc), rc;
    node(path, sizeof(path), dir, "protocol");
    if ((rc = xs_client_write(path, XEN_IO_PROTO_ABI_NATIVE)) != 0)
        return report("writing protocol", rc), rc;
    node(path, sizeof(path), dir, "state");
    if ((rc = write_number(path, XenbusStateInitialised)) != 0)
        return report("switching to Initialised", rc), rc;
    if ((rc = wait_backend(backend_state, XenbusStateConnected, deadline)) != 0)
        return report("waiting for the backend (Connected)", rc), rc;

    uint64_t v = 0;
    node(path, sizeof(path), backend, "sectors");
    if ((rc = read_number(path, &sectors, deadline)) != 0)
        return report("reading sectors", rc), rc;
    node(path, sizeof(path), backend, "sector-size");
    sector_size = read_number(path, &v, deadline) == 0 ? (uint32_t)v : SECTOR;
    node(path, sizeof(path), backend, "feature-flush-cache");
    char flag[8];
    flush_supported = xs_client_read(path, flag, sizeof(flag)) > 0 && flag[0] == '1';
    node(path, sizeof(path), dir, "state");
    if ((rc = write_number(path, XenbusStateConnected)) != 0)
        return report("switching to Connected", rc), rc;
    connected = 1;
    console_puts("blkfront: connected to ");
    console_puts(backend);
    console_puts(", ");
    console_put_dec(sectors * SECTOR >> 10);
    console_puts(" KiB, sector size ");
    console_put_dec(sector_size);
    console_puts(flush_supported ? ", flush-cache\n" : ", no flush\n");
    return 0;
}

uint64_t blkfront_size(void) { return connected ? sectors * SECTOR : 0; }

/* Issues one request and waits for its response; returns 0 or -XEN_EIO. */
static int submit(uint8_t operation, uint64_t offset, size_t len)
{
    blkif_request_t *req = RING_GET_REQUEST(&ring, ring.req_prod_pvt);
    req->operation = operation;
    req->handle = 0;
    req->id = ++next_id;
    req->sector_number = offset / SECTOR;
    req->nr_segments = len ? 1 : 0;
    if (len) {
        req->seg[0].gref = data_ref;
        req->seg[0].first_sect = 0;
        req->seg[0].last_sect = (uint8_t)(len / SECTOR - 1);
    }
    ring.req_prod_pvt++;
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&ring, notify);
    if (notify)
        evtchn_send_raw(port);
    uint64_t deadline = clock_monotonic_ns() + IO_TIMEOUT_NS;
    for (;;) {
        if (RING_HAS_UNCONSUMED_RESPONSES(&ring)) {
            rmb();
            blkif_response_t *rsp = RING_GET_RESPONSE(&ring, ring.rsp_cons);
            uint64_t id = rsp->id;
            int16_t status = rsp->status;
            ring.rsp_cons++;
            mb();
            ring.sring->rsp_event = ring.rsp_cons + 1;
            evtchn_take_pending(port);
            if (id != next_id)
                continue; /* a stale response */
            return status == BLKIF_RSP_OKAY ? 0 : -XEN_EIO;
        }
        if (clock_monotonic_ns() > deadline)
            return -XEN_ETIMEDOUT;
        HYPERVISOR_sched_op(SCHEDOP_yield, 0);
    }
}

static int check(uint64_t offset, size_t len)
{
    if (!connected)
        return -XEN_ENODEV;
    if (len == 0 || len > PAGE_SIZE || len % SECTOR || offset % SECTOR || offset + len > sectors * SECTOR)
        return -XEN_EINVAL;
    return 0;
}

int blkfront_read(uint64_t offset, uint8_t *buf, size_t len)
{
    int rc = check(offset, len);
    if (rc == 0 && (rc = submit(BLKIF_OP_READ, offset, len)) == 0)
        memcpy(buf, data_page, len);
    return rc;
}

int blkfront_write(uint64_t offset, const uint8_t *buf, size_t len)
{
    int rc = check(offset, len);
    if (rc != 0)
        return rc;
    memcpy(data_page, buf, len);
    wmb();
    return submit(BLKIF_OP_WRITE, offset, len);
}

int blkfront_flush(void)
{
    if (!connected)
        return -XEN_ENODEV;
    return flush_supported ? submit(BLKIF_OP_FLUSH_DISKCACHE, 0, 0) : 0;
}
