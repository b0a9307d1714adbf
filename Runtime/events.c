/* events.c: event channels — bind interdomain/VIRQ, notify, and waiting with SCHEDOP_poll on the bound ports (no upcalls, x86 and ARM). */
#include "events.h"
#include "hypervisor.h"

/*
 * The runtime never takes event upcalls: every bound port is masked and vCPU 0 keeps its
 * upcall mask set. Waiting is SCHEDOP_poll over the bound ports, which blocks the vCPU until
 * one of them is pending (mask or not) or the timeout passes. SCHEDOP_block is not used: it
 * unmasks upcalls atomically and would need a callback entry point.
 * Xen polls at most 128 ports at once; with more bound, the wait polls the first 128 and
 * wakes up every millisecond to look at the others.
 */

_Static_assert(RT_VIRQ_DOM_EXC == VIRQ_DOM_EXC, "runtime.h matches xen.h");

#define MAX_BOUND_PORTS 1024
#define MAX_POLL_PORTS 128          /* Xen's do_poll limit */
#define OVERFLOW_POLL_NS 1000000ull
/* shared_info's pending and mask arrays are xen_ulong_t words: 64 bits on x86_64 and on ARM. */
#define WORD_BITS (sizeof(xen_ulong_t) * 8)
#define PORT_WORD(port) ((port) / WORD_BITS)
#define PORT_BIT(port) ((xen_ulong_t)1 << ((port) % WORD_BITS))

static evtchn_port_t bound[MAX_BOUND_PORTS];
static unsigned nr_bound;

static int remember(evtchn_port_t port)
{
    if (nr_bound == MAX_BOUND_PORTS)
        return -XEN_ENOSPC;
    bound[nr_bound++] = port;
    /* masked: pending bits still get set, but no upcall is attempted */
    __atomic_fetch_or(&boot.shared_info->evtchn_mask[PORT_WORD(port)], PORT_BIT(port), __ATOMIC_SEQ_CST);
    return 0;
}

static void forget(evtchn_port_t port)
{
    for (unsigned i = 0; i < nr_bound; i++) {
        if (bound[i] == port) {
            bound[i] = bound[--nr_bound];
            return;
        }
    }
}

void init_events(void)
{
    nr_bound = 0;
#if defined(__x86_64__)
    if (boot.shared_info)
        boot.shared_info->vcpu_info[0].evtchn_upcall_mask = 1;
#else
    /* ARM has no upcall mask: the upcall is the GIC PPI of the device tree's Xen node, and it never
     * reaches us because the CPU runs with IRQs masked (start.S) and the GIC is left untouched. */
#endif
}

void fini_events(void)
{
    while (nr_bound)
        evtchn_close(bound[nr_bound - 1]);
}

int evtchn_send_raw(uint32_t port)
{
    struct evtchn_send op = { .port = port };
    return (int)HYPERVISOR_event_channel_op(EVTCHNOP_send, &op);
}

int evtchn_bind_interdomain(uint16_t remote_dom, uint32_t remote_port, uint32_t *port)
{
    if (!boot.shared_info)
        return -XEN_ENOSYS;
    struct evtchn_bind_interdomain op = { .remote_dom = remote_dom, .remote_port = remote_port };
    int rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_bind_interdomain, &op);
    if (rc == 0 && (rc = remember(op.local_port)) == 0)
        *port = op.local_port;
    return rc;
}

/* VIRQs bound so far (port + 1; 0 = not bound): Xen binds each VIRQ once per vCPU. */
static evtchn_port_t virq_ports[NR_VIRQS];

int evtchn_bind_virq(uint32_t virq, uint32_t *port)
{
    if (!boot.shared_info)
        return -XEN_ENOSYS;
    if (virq < NR_VIRQS && virq_ports[virq]) {
        *port = virq_ports[virq] - 1;
        return 0;
    }
    struct evtchn_bind_virq op = { .virq = virq, .vcpu = 0 };
    int rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq, &op);
    if (rc == 0 && (rc = remember(op.port)) == 0) {
        *port = op.port;
        if (virq < NR_VIRQS)
            virq_ports[virq] = op.port + 1;
    }
    return rc;
}

int evtchn_alloc_unbound(uint16_t remote_dom, uint32_t *port)
{
    if (!boot.shared_info)
        return -XEN_ENOSYS;
    struct evtchn_alloc_unbound op = { .dom = DOMID_SELF, .remote_dom = remote_dom };
    int rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &op);
    if (rc == 0 && (rc = remember(op.port)) == 0)
        *port = op.port;
    return rc;
}

int evtchn_close(uint32_t port)
{
    forget(port);
    for (unsigned v = 0; v < NR_VIRQS; v++)
        if (virq_ports[v] == port + 1)
            virq_ports[v] = 0;
    struct evtchn_close op = { .port = port };
    int rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_close, &op);
    rt_check_cpu_structures("after closing an event channel");
    return rc;
}

int evtchn_notify(uint32_t port)
{
    if (!boot.xen)
        return -XEN_ENOSYS;
    return evtchn_send_raw(port);
}

int evtchn_take_pending(uint32_t port)
{
    if (!boot.shared_info || port >= sizeof(boot.shared_info->evtchn_pending) * 8)
        return 0;
    xen_ulong_t bit = PORT_BIT(port);
    xen_ulong_t old = __atomic_fetch_and(&boot.shared_info->evtchn_pending[PORT_WORD(port)], ~bit, __ATOMIC_SEQ_CST);
    return (old & bit) != 0;
}

static int any_bound_pending(void)
{
    for (unsigned i = 0; i < nr_bound; i++)
        if (__atomic_load_n(&boot.shared_info->evtchn_pending[PORT_WORD(bound[i])], __ATOMIC_SEQ_CST) &
            PORT_BIT(bound[i]))
            return 1;
    return 0;
}

int evtchn_wait(uint64_t timeout_ns)
{
    if (!boot.shared_info || nr_bound == 0)
        return 0;
    uint64_t deadline = timeout_ns ? clock_monotonic_ns() + timeout_ns : 0;
    for (;;) {
        if (any_bound_pending())
            return 1;
        /* No clock reading without a deadline: where Xen emulates the TSC each one is a trap. */
        int overflow = nr_bound > MAX_POLL_PORTS;
        uint64_t now = deadline || overflow ? clock_monotonic_ns() : 0;
        if (deadline && now >= deadline)
            return 0;
        struct sched_poll poll = {
            .nr_ports = nr_bound < MAX_POLL_PORTS ? nr_bound : MAX_POLL_PORTS,
            .timeout = deadline, /* absolute Xen system time, 0 = none */
        };
        if (overflow && (!deadline || deadline > now + OVERFLOW_POLL_NS))
            poll.timeout = now + OVERFLOW_POLL_NS;
        set_xen_guest_handle(poll.ports, bound);
        if (HYPERVISOR_sched_op(SCHEDOP_poll, &poll) != 0)
            HYPERVISOR_sched_op(SCHEDOP_yield, 0); /* never spin hard on an error */
    }
}
