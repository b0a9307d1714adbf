/* blkfront.c: a Xen virtual block device frontend (blkif) — one granted ring page, BLKFRONT_MAX_PAGES granted data pages, one request of up to that many segments at a time; the xenbus handshake either through dom0's store (an ordinary guest) or by the caller (the Xenstore domain, through its own store). */
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
 * The toolstack (or dom0 by hand) creates device/vbd/<vdev> with `backend` and `backend-id`; the
 * frontend waits for the backend to reach InitWait, publishes ring-ref, event-channel and
 * protocol, switches to Initialised, waits for Connected, reads the geometry and switches to
 * Connected. blkfront_open does all of it through dom0's xenstored (xsclient.c). The Xenstore
 * domain is itself the store the backend talks to, so it runs the handshake in Swift on its own
 * store and calls only blkfront_prepare (grants and the event channel) and blkfront_attach (the
 * geometry), then a first read it does not wait for (blkfront_probe_start/poll: blkback needs more
 * answers from that store before it serves the ring). Requests are synchronous: the data pages are
 * granted once and reused; completion is awaited by yielding. The port is bound through events.c,
 * so a waiting event loop wakes up for a response (RingServer takes its pending bit each turn).
 */

_Static_assert(BLKFRONT_MAX_PAGES <= BLKIF_MAX_SEGMENTS_PER_REQUEST, "one request carries every data page");

#define SECTOR 512u                       /* blkif sector numbers are always 512-byte units */
#define HANDSHAKE_STEP_NS 10000000ull     /* xenstore polling interval while waiting */
#define IO_TIMEOUT_NS 30000000000ull
#define SLOW_IO_NS 1000000000ull        /* a request slower than this is reported */

static blkif_front_ring_t ring;
static uint8_t *data_pages;                 /* BLKFRONT_MAX_PAGES contiguous pages */
static uint32_t data_refs[BLKFRONT_MAX_PAGES];
static int prepared;
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

    uint32_t ring_ref = 0, event_channel = 0;
    if ((rc = blkfront_prepare((uint16_t)backend_id, &ring_ref, &event_channel)) != 0)
        return report("granting the pages and allocating the event channel", rc), rc;
    node(path, sizeof(path), dir, "ring-ref");
    if ((rc = write_number(path, ring_ref)) != 0)
        return report("writing ring-ref", rc), rc;
    node(path, sizeof(path), dir, "event-channel");
    if ((rc = write_number(path, event_channel)) != 0)
        return report("writing event-channel", rc), rc;
    node(path, sizeof(path), dir, "protocol");
    if ((rc = xs_client_write(path, XEN_IO_PROTO_ABI_NATIVE)) != 0)
        return report("writing protocol", rc), rc;
    node(path, sizeof(path), dir, "state");
    if ((rc = write_number(path, XenbusStateInitialised)) != 0)
        return report("switching to Initialised", rc), rc;
    if ((rc = wait_backend(backend_state, XenbusStateConnected, deadline)) != 0)
        return report("waiting for the backend (Connected)", rc), rc;

    uint64_t disk_sectors = 0, v = 0;
    node(path, sizeof(path), backend, "sectors");
    if ((rc = read_number(path, &disk_sectors, deadline)) != 0)
        return report("reading sectors", rc), rc;
    node(path, sizeof(path), backend, "sector-size");
    uint32_t disk_sector_size = read_number(path, &v, deadline) == 0 ? (uint32_t)v : SECTOR;
    node(path, sizeof(path), backend, "feature-flush-cache");
    char flag[8];
    int flush = xs_client_read(path, flag, sizeof(flag)) > 0 && flag[0] == '1';
    node(path, sizeof(path), dir, "state");
    if ((rc = write_number(path, XenbusStateConnected)) != 0)
        return report("switching to Connected", rc), rc;
    console_puts("blkfront: backend ");
    console_puts(backend);
    console_puts("\n");
    return blkfront_attach(disk_sectors, disk_sector_size, flush);
}

int blkfront_prepare(uint16_t backend_id, uint32_t *ring_ref, uint32_t *event_channel)
{
    static uint32_t prepared_ring_ref;
    int rc;
    if (connected)
        return -XEN_EINVAL;
    if (!prepared) {
        blkif_sring_t *sring = mm_alloc_pages(1);
        data_pages = mm_alloc_pages(BLKFRONT_MAX_PAGES);
        if (!sring || !data_pages)
            return -XEN_ENOMEM;
        SHARED_RING_INIT(sring);
        FRONT_RING_INIT(&ring, sring, PAGE_SIZE);
        if ((rc = gnttab_grant_access(backend_id, sring, &prepared_ring_ref)) != 0)
            return rc;
        for (unsigned i = 0; i < BLKFRONT_MAX_PAGES; i++)
            if ((rc = gnttab_grant_access(backend_id, data_pages + i * PAGE_SIZE, &data_refs[i])) != 0)
                return rc;
        /* bound through events.c: a waiting event loop wakes up for its responses (it takes
         * the port's pending bit each turn, RingServer) */
        if ((rc = evtchn_alloc_unbound(backend_id, &port)) != 0)
            return rc;
        prepared = 1;
    }
    *ring_ref = prepared_ring_ref;
    *event_channel = port;
    return 0;
}

int blkfront_attach(uint64_t disk_sectors, uint32_t disk_sector_size, int flush)
{
    if (!prepared)
        return -XEN_EINVAL;
    sectors = disk_sectors;
    sector_size = disk_sector_size ? disk_sector_size : SECTOR;
    flush_supported = flush;
    connected = 1;
    console_puts("blkfront: connected, ");
    console_put_dec(sectors * SECTOR >> 10);
    console_puts(" KiB, sector size ");
    console_put_dec(sector_size);
    console_puts(flush_supported ? ", flush-cache\n" : ", no flush\n");
    return 0;
}

const char *blkfront_protocol(void) { return XEN_IO_PROTO_ABI_NATIVE; }

uint64_t blkfront_size(void) { return connected ? sectors * SECTOR : 0; }

/* Puts one request on the ring and notifies the backend. */
static void push(uint8_t operation, uint64_t offset, size_t len)
{
    blkif_request_t *req = RING_GET_REQUEST(&ring, ring.req_prod_pvt);
    req->operation = operation;
    req->handle = 0;
    req->id = ++next_id;
    req->sector_number = offset / SECTOR;
    size_t pages = (len + PAGE_SIZE - 1) / PAGE_SIZE;
    req->nr_segments = (uint8_t)pages;
    for (size_t i = 0; i < pages; i++) {
        size_t bytes = len - i * PAGE_SIZE < PAGE_SIZE ? len - i * PAGE_SIZE : PAGE_SIZE;
        req->seg[i].gref = data_refs[i];
        req->seg[i].first_sect = 0;
        req->seg[i].last_sect = (uint8_t)(bytes / SECTOR - 1);
    }
    ring.req_prod_pvt++;
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&ring, notify);
    if (notify)
        evtchn_send_raw(port);
}

/* Takes the responses that arrived: 1 when the one for the latest request was among them (its
 * status in *status), 0 otherwise. Older responses are stale (their request timed out). */
static int take_response(int16_t *status)
{
    while (RING_HAS_UNCONSUMED_RESPONSES(&ring)) {
        rmb();
        blkif_response_t *rsp = RING_GET_RESPONSE(&ring, ring.rsp_cons);
        uint64_t id = rsp->id;
        int16_t st = rsp->status;
        ring.rsp_cons++;
        mb();
        ring.sring->rsp_event = ring.rsp_cons + 1;
        evtchn_take_pending(port);
        if (id == next_id) {
            *status = st;
            return 1;
        }
    }
    return 0;
}

static int report_status(int16_t status, uint8_t operation, uint64_t offset)
{
    if (status == BLKIF_RSP_OKAY)
        return 0;
    console_puts("blkfront: request failed, status ");
    console_put_dec((uint64_t)(uint16_t)status);
    console_puts(operation == BLKIF_OP_READ ? " (read at sector " : " (write or flush at sector ");
    console_put_dec(offset / SECTOR);
    console_puts(")\n");
    return -XEN_EIO;
}

/* Issues one request and waits for its response (yielding); returns 0, -XEN_EIO or -XEN_ETIMEDOUT. */
static int submit(uint8_t operation, uint64_t offset, size_t len)
{
    push(operation, offset, len);
    uint64_t started = clock_monotonic_ns(), deadline = started + IO_TIMEOUT_NS;
    int16_t status = 0;
    for (;;) {
        if (take_response(&status)) {
            uint64_t took = clock_monotonic_ns() - started;
            if (took > SLOW_IO_NS) {
                console_puts("blkfront: a request took ");
                console_put_dec(took / 1000000);
                console_puts(" ms\n");
            }
            return report_status(status, operation, offset);
        }
        if (clock_monotonic_ns() > deadline) {
            console_puts("blkfront: no response within the timeout\n");
            return -XEN_ETIMEDOUT;
        }
        HYPERVISOR_sched_op(SCHEDOP_yield, 0);
    }
}

static int probing, probed;

int blkfront_probe_start(void)
{
    if (!connected || probing || probed)
        return -XEN_EINVAL;
    push(BLKIF_OP_READ, 0, PAGE_SIZE);
    probing = 1;
    return 0;
}

int blkfront_probe_poll(void)
{
    int16_t status = 0;
    if (probed)
        return 1;
    if (!probing)
        return -XEN_EINVAL;
    if (!take_response(&status))
        return 0;
    probing = 0;
    if (report_status(status, BLKIF_OP_READ, 0) != 0)
        return -XEN_EIO;
    probed = 1;
    return 1;
}

enum blkfront_phase blkfront_phase(void)
{
    return probed ? BLKFRONT_READY : probing ? BLKFRONT_PROBING : connected ? BLKFRONT_ATTACHED
         : prepared ? BLKFRONT_PREPARED : BLKFRONT_NONE;
}

uint32_t blkfront_event_port(void) { return prepared ? port : 0; }

static int check(uint64_t offset, size_t len)
{
    if (!connected)
        return -XEN_ENODEV;
    if (len == 0 || len > BLKFRONT_MAX_PAGES * PAGE_SIZE || len % SECTOR || offset % SECTOR || offset + len > sectors * SECTOR)
        return -XEN_EINVAL;
    return 0;
}

int blkfront_read(uint64_t offset, uint8_t *buf, size_t len)
{
    int rc = check(offset, len);
    if (rc == 0 && (rc = submit(BLKIF_OP_READ, offset, len)) == 0)
        memcpy(buf, data_pages, len);
    return rc;
}

int blkfront_write(uint64_t offset, const uint8_t *buf, size_t len)
{
    int rc = check(offset, len);
    if (rc != 0)
        return rc;
    memcpy(data_pages, buf, len);
    wmb();
    return submit(BLKIF_OP_WRITE, offset, len);
}

int blkfront_flush(void)
{
    if (!connected)
        return -XEN_ENODEV;
    return flush_supported ? submit(BLKIF_OP_FLUSH_DISKCACHE, 0, 0) : 0;
}
