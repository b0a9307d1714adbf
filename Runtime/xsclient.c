/* xsclient.c: a minimal Xenstore client on our own store ring (an ordinary guest's HVM_PARAM_STORE_PFN) — one WRITE at a time, used to publish where our vchan is. */
#include "os.h"
#include "hypervisor.h"
#include "events.h"
#include <xen/io/xs_wire.h>

/* How long a request may wait for dom0's xenstored to answer. */
#define REPLY_TIMEOUT_NS 10000000000ull

static uint32_t next_req_id = 1;

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

int xs_client_write(const char *path, const char *value)
{
    if (!boot.xen || !boot.store_pfn)
        return -XEN_ENOSYS;
    volatile struct xenstore_domain_interface *r = pfn_to_virt(boot.store_pfn);
    size_t path_len = strlen(path) + 1, value_len = strlen(value);
    struct xsd_sockmsg msg = {
        .type = XS_WRITE,
        .req_id = next_req_id++,
        .tx_id = 0,
        .len = (uint32_t)(path_len + value_len),
    };
    if (msg.len > XENSTORE_PAYLOAD_MAX)
        return -XEN_E2BIG;
    uint64_t deadline = clock_monotonic_ns() + REPLY_TIMEOUT_NS;
    int rc;
    if ((rc = put(r, &msg, sizeof(msg), deadline)) || (rc = put(r, path, path_len, deadline)) ||
        (rc = put(r, value, value_len, deadline)))
        return rc;
    evtchn_send_raw(boot.store_evtchn);
    struct xsd_sockmsg reply;
    uint8_t payload[XENSTORE_PAYLOAD_MAX];
    if ((rc = get(r, &reply, sizeof(reply), deadline)) != 0)
        return rc;
    if (reply.len > sizeof(payload) || (rc = get(r, payload, reply.len, deadline)) != 0)
        return rc ? rc : -XEN_EIO;
    evtchn_send_raw(boot.store_evtchn); /* we consumed: xenstored may be waiting for space */
    return reply.type == XS_WRITE && reply.req_id == msg.req_id ? 0 : -XEN_EACCES;
}
