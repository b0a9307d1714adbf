/* xsclient.c: a minimal Xenstore client on our own store ring (an ordinary guest's HVM_PARAM_STORE_PFN) — one READ or WRITE at a time, for the vchan offer and the block frontend's handshake. */
#include "os.h"
#include "hypervisor.h"
#include "events.h"
#include <xen/io/xs_wire.h>

/* How long a request may wait for dom0's xenstored to answer. */
#define REPLY_TIMEOUT_NS 10000000000ull

static uint32_t next_req_id = 1;

static int strcmp_eq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* Copies bytes into the request ring, waiting (bounded) for space; 0 or -XEN_ETIMEDOUT. */
static int put(volatile struct xenstore_domain_interface *r, const void *data, size_t len, uint64_t deadline)
{
    const uint8_t *p = data;
    while (len) {
        XENSTORE_RING_IDX prod = r->req_prod;
        mb();
        if (prod - r->req_cons >= XENSTORE_RING_SIZE) {
            if (clock_monotonic_ns() > deadline)
                return -XEN_ETIMEDOUT;
            HYPERVISOR_sched_op(SCHEDOP_yield, 0);
            continue;
        }
        r->req[MASK_XENSTORE_IDX(prod)] = (char)*p++;
        wmb();
        r->req_prod = prod + 1;
        len--;
    }
    return 0;
}

/* Takes `len` reply bytes out of the response ring, waiting (bounded) for them. */
static int get(volatile struct xenstore_domain_interface *r, void *data, size_t len, uint64_t deadline)
{
    uint8_t *p = data;
    while (len) {
        XENSTORE_RING_IDX cons = r->rsp_cons;
        rmb();
        if (cons == r->rsp_prod) {
            if (clock_monotonic_ns() > deadline)
                return -XEN_ETIMEDOUT;
            HYPERVISOR_sched_op(SCHEDOP_yield, 0); /* a few requests at boot: no need to sleep on the port */
            continue;
        }
        *p++ = (uint8_t)r->rsp[MASK_XENSTORE_IDX(cons)];
        mb();
        r->rsp_cons = cons + 1;
        len--;
    }
    return 0;
}

/* One request (payload = the `parts`, concatenated) and its reply; the reply payload is copied into
 * reply (up to reply_size bytes, NUL-terminated when there is room) and its length stored in *reply_len.
 * Returns 0, -XEN_ENOENT / -XEN_EACCES / -XEN_EINVAL for an XS_ERROR reply, or another negative errno. */
static int request(uint32_t type, const char *const parts[], const size_t lengths[], int nr_parts,
                   char *reply_buf, size_t reply_size, size_t *reply_len)
{
    if (!boot.xen || !boot.store_pfn)
        return -XEN_ENOSYS;
    volatile struct xenstore_domain_interface *r = pfn_to_virt(boot.store_pfn);
    struct xsd_sockmsg msg = { .type = type, .req_id = next_req_id++, .tx_id = 0, .len = 0 };
    for (int i = 0; i < nr_parts; i++)
        msg.len += (uint32_t)lengths[i];
    if (msg.len > XENSTORE_PAYLOAD_MAX)
        return -XEN_E2BIG;
    uint64_t deadline = clock_monotonic_ns() + REPLY_TIMEOUT_NS;
    int rc = put(r, &msg, sizeof(msg), deadline);
    for (int i = 0; rc == 0 && i < nr_parts; i++)
        rc = put(r, parts[i], lengths[i], deadline);
    if (rc != 0)
        return rc;
    evtchn_send_raw(boot.store_evtchn);
    struct xsd_sockmsg reply;
    static uint8_t payload[XENSTORE_PAYLOAD_MAX + 1];
    if ((rc = get(r, &reply, sizeof(reply), deadline)) != 0)
        return rc;
    if (reply.len > XENSTORE_PAYLOAD_MAX || (rc = get(r, payload, reply.len, deadline)) != 0)
        return rc ? rc : -XEN_EIO;
    evtchn_send_raw(boot.store_evtchn); /* we consumed: xenstored may be waiting for space */
    payload[reply.len] = 0;
    if (reply.req_id != msg.req_id)
        return -XEN_EIO;
    if (reply.type == XS_ERROR) {
        const char *e = (const char *)payload;
        return strcmp_eq(e, "ENOENT") ? -XEN_ENOENT : strcmp_eq(e, "EACCES") ? -XEN_EACCES : -XEN_EINVAL;
    }
    if (reply.type != type)
        return -XEN_EIO;
    size_t n = reply.len < reply_size ? reply.len : reply_size;
    memcpy(reply_buf, payload, n);
    if (n < reply_size)
        reply_buf[n] = 0;
    if (reply_len)
        *reply_len = reply.len;
    return 0;
}

int xs_client_write(const char *path, const char *value)
{
    const char *parts[] = { path, value };
    const size_t lengths[] = { strlen(path) + 1, strlen(value) };
    char ok[4];
    return request(XS_WRITE, parts, lengths, 2, ok, sizeof(ok), NULL);
}

int xs_client_read(const char *path, char *buf, size_t size)
{
    const char *parts[] = { path };
    const size_t lengths[] = { strlen(path) + 1 };
    size_t len = 0;
    int rc = request(XS_READ, parts, lengths, 1, buf, size, &len);
    if (rc != 0)
        return rc;
    if (len >= size)
        return -XEN_E2BIG;
    return (int)len;
}
