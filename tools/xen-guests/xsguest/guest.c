/*
 * xsguest: a tiny x86_64 Xen PV guest that talks Xenstore over its own ring page, to test a
 * dom0 xenstored with a real guest. Its command line picks what it does:
 *   mode=good    read, write, directory, watch, rm through the ring; writes data/result = PASS
 *   mode=badidx  corrupts its request producer index, expects the store's error word, then
 *                reconnects (xenstore-ring.txt) and writes data/result
 *   mode=huge    sends a header announcing a 100000-byte payload, expects the error word, then
 *                reconnects and writes data/result
 *   mode=flood   writes data/flood as fast as the ring allows, forever
 *   mode=tick    writes data/tick = 1, 2, 3, ... about every 50 ms, each after the last was answered,
 *                forever: a guest that keeps using its ring at a gentle pace (the stub's restart test)
 *   mode=hello   never touches Xenstore: prints "hello from pv guest" (or "pvh") and powers off; the
 *                Xen-in-QEMU harness's tiny-pv and tiny-pvh guests (tools/xen-qemu/guests/)
 * Every step is reported on the PV console ring ("xsguest: ..."), read by xenconsoled.
 * Built twice: as a 64-bit PV guest (head.S, guest.ld) and, with -DXSGUEST_PVH, as a 32-bit PVH
 * guest (head32.S, guest32.ld) that finds its ring through HVM parameters; only mode=good and
 * mode=hello are used as PVH, and it powers off when done (it has no cheap way to sleep).
 */
#include <stdint.h>
#include <stddef.h>
#include <xen/xen.h>
#include <xen/sched.h>
#include <xen/event_channel.h>
#include <xen/io/console.h>
#include <xen/io/xs_wire.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#ifdef XSGUEST_PVH
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/hvm/start_info.h>
/* 32-bit HVM hypercall ABI: arguments in ebx, ecx, edx. */
#define hypercall3(nr, a1, a2, a3) ({                                   \
    long r_, i1_, i2_, i3_;                                             \
    __asm__ volatile("call hypercall_page + (" STR(nr) " * 32)"         \
                     : "=a"(r_), "=b"(i1_), "=c"(i2_), "=d"(i3_)        \
                     : "1"((long)(a1)), "2"((long)(a2)), "3"((long)(a3))\
                     : "memory");                                       \
    r_; })
#else
/* 64-bit PV hypercall ABI: arguments in rdi, rsi, rdx. */
#define hypercall3(nr, a1, a2, a3) ({                                   \
    long r_, i1_, i2_, i3_;                                             \
    __asm__ volatile("call hypercall_page + (" STR(nr) " * 32)"         \
                     : "=a"(r_), "=D"(i1_), "=S"(i2_), "=d"(i3_)        \
                     : "1"((long)(a1)), "2"((long)(a2)), "3"((long)(a3))\
                     : "memory", "rcx", "r11");                         \
    r_; })
#endif
#define barrier() __asm__ volatile("" ::: "memory")
#define mb() __asm__ volatile("mfence" ::: "memory")

extern char hypercall_page[];
#ifndef XSGUEST_PVH
extern char shared_info_page[];
#endif

static struct xencons_interface *cons;
static evtchn_port_t cons_port;
static struct xenstore_domain_interface *xs;
static evtchn_port_t xs_port;
static shared_info_t *shared;
static uint32_t next_id = 1;

static long sched_op(int cmd, void *arg) { return hypercall3(__HYPERVISOR_sched_op, cmd, arg, 0); }
static void notify(evtchn_port_t port)
{
    struct evtchn_send send = { .port = port };
    hypercall3(__HYPERVISOR_event_channel_op, EVTCHNOP_send, &send, 0);
}

static size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int seq(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return *a == *b; }
static void copy(void *to, const void *from, size_t n)
{ char *t = to; const char *f = from; while (n--) *t++ = *f++; }

/* ---- console ---- */
static void cons_write(const char *s, size_t n)
{
    if (!cons) return;
    while (n) {
        XENCONS_RING_IDX c = cons->out_cons, p = cons->out_prod;
        barrier();
        if (p - c >= sizeof(cons->out)) { notify(cons_port); sched_op(SCHEDOP_yield, 0); continue; }
        cons->out[MASK_XENCONS_IDX(p, cons->out)] = *s++;
        n--;
        barrier();
        cons->out_prod = p + 1;
    }
    notify(cons_port);
}
static void say(const char *s) { cons_write(s, slen(s)); }
static void say_dec(unsigned long v)
{
    char b[24]; int i = sizeof(b);
    b[--i] = 0;
    do { b[--i] = '0' + v % 10; v /= 10; } while (v);
    say(&b[i]);
}

/* ---- waiting for the store's event channel ---- */
static void clear_pending(evtchn_port_t port)
{
    const unsigned bits = 8 * sizeof(shared->evtchn_pending[0]);
    if (shared)
        __atomic_and_fetch(&shared->evtchn_pending[port / bits], ~((xen_ulong_t)1 << (port % bits)), __ATOMIC_SEQ_CST);
}
/* Sleeps until the store notifies (or just yields without a mapped shared_info). */
static void wait_store(void)
{
    if (!shared) { sched_op(SCHEDOP_yield, 0); return; }
    struct sched_poll poll = { .nr_ports = 1, .timeout = 0 };
    set_xen_guest_handle(poll.ports, &xs_port);
    sched_op(SCHEDOP_poll, &poll);
    clear_pending(xs_port);
}

/* ---- the ring ---- */
static int ring_put(const void *data, uint32_t len)
{
    const char *d = data;
    while (len) {
        if (xs->error) return -1;
        XENSTORE_RING_IDX c = xs->req_cons, p = xs->req_prod;
        mb();
        if (p - c >= XENSTORE_RING_SIZE) { notify(xs_port); wait_store(); continue; }
        uint32_t room = XENSTORE_RING_SIZE - (p - c), chunk = XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(p);
        uint32_t n = len < room ? len : room;
        if (n > chunk) n = chunk;
        copy(&xs->req[MASK_XENSTORE_IDX(p)], d, n);
        mb();
        xs->req_prod = p + n;
        d += n; len -= n;
    }
    notify(xs_port);
    return 0;
}
static int ring_get(void *data, uint32_t len)
{
    char *d = data;
    while (len) {
        XENSTORE_RING_IDX c = xs->rsp_cons, p = xs->rsp_prod;
        mb();
        if (p == c) { if (xs->error) return -1; wait_store(); continue; }
        uint32_t avail = p - c, chunk = XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(c);
        uint32_t n = len < avail ? len : avail;
        if (n > chunk) n = chunk;
        if (avail > XENSTORE_RING_SIZE) return -1;
        copy(d, &xs->rsp[MASK_XENSTORE_IDX(c)], n);
        mb();
        xs->rsp_cons = c + n;
        notify(xs_port);
        d += n; len -= n;
    }
    return 0;
}

static char reply[XENSTORE_PAYLOAD_MAX + 1];
static char last_event[XENSTORE_PAYLOAD_MAX + 1];
static unsigned events;

/* Reads one message; watch events are remembered in last_event. Returns its type or -1. */
static int read_message(uint32_t *len)
{
    struct xsd_sockmsg m;
    if (ring_get(&m, sizeof(m)) || m.len > XENSTORE_PAYLOAD_MAX || ring_get(reply, m.len)) return -1;
    reply[m.len] = 0;
    *len = m.len;
    if (m.type == XS_WATCH_EVENT) { copy(last_event, reply, m.len + 1); events++; }
    return (int)m.type;
}

/* One request with up to two strings (the second without its NUL for WRITE); returns the reply type. */
static int request(uint32_t type, const char *a, const char *b, int b_nul)
{
    uint32_t la = slen(a) + 1, lb = b ? slen(b) + (b_nul ? 1 : 0) : 0;
    struct xsd_sockmsg m = { .type = type, .req_id = next_id++, .tx_id = 0, .len = la + lb };
    if (ring_put(&m, sizeof(m)) || ring_put(a, la) || (lb && ring_put(b, lb))) return -1;
    for (;;) {
        uint32_t len;
        int t = read_message(&len);
        if (t != XS_WATCH_EVENT) return t;
    }
}

static int failures;
static const char *failed_step = "";
static void check(int ok, const char *step)
{
    say(ok ? "xsguest: ok   " : "xsguest: FAIL "); say(step); say("\n");
    if (!ok && !failures++) failed_step = step;
}

static void wait_event(const char *path)
{
    for (int i = 0; i < 100; i++) {
        if (events && seq(last_event, path)) return;
        uint32_t len;
        if (read_message(&len) < 0) return;
    }
}

/* Gives xenconsoled a bounded chance to drain the console ring, then asks Xen to power the guest off. */
static void power_off(void)
{
    for (int i = 0; cons && i < 1000 && cons->out_cons != cons->out_prod; i++) sched_op(SCHEDOP_yield, 0);
    struct sched_shutdown sd = { .reason = SHUTDOWN_poweroff };
    for (;;) sched_op(SCHEDOP_shutdown, &sd);
}

static void idle(void)
{
#ifdef XSGUEST_PVH
    power_off();
#else
    for (;;) wait_store();
#endif
}

static void reconnect(const char *why)
{
    say("xsguest: store error word = "); say_dec(xs->error); say(" after "); say(why); say("\n");
    if (!(xs->server_features & XENSTORE_SERVER_FEATURE_RECONNECTION)) { say("xsguest: no reconnection feature\n"); idle(); }
    xs->connection = XENSTORE_RECONNECT;
    mb();
    notify(xs_port);
    for (int i = 0; i < 100000 && xs->connection != XENSTORE_CONNECTED; i++) wait_store();
    say(xs->connection == XENSTORE_CONNECTED ? "xsguest: reconnected\n" : "xsguest: reconnection timed out\n");
}

static void mode_good(void)
{
    uint32_t len;
    check(request(XS_READ, "name", NULL, 0) == XS_READ, "read name");
    say("xsguest: my name is "); say(reply); say("\n");
    check(request(XS_WRITE, "data/greeting", "hello from xsguest", 0) == XS_WRITE, "write data/greeting");
    check(request(XS_READ, "data/greeting", NULL, 0) == XS_READ && seq(reply, "hello from xsguest"),
          "read data/greeting back");
    check(request(XS_WATCH, "data/watched", "tok", 1) == XS_WATCH, "watch data/watched");
    wait_event("data/watched");
    check(events >= 1 && seq(last_event, "data/watched"), "initial watch event");
    unsigned before = events;
    check(request(XS_WRITE, "data/watched", "1", 0) == XS_WRITE, "write data/watched");
    wait_event("data/watched");
    check(events > before && seq(last_event, "data/watched"), "watch event after the write");
    check(request(XS_DIRECTORY, "data", NULL, 0) == XS_DIRECTORY, "directory data");
    check(request(XS_RM, "data/greeting", NULL, 0) == XS_RM, "rm data/greeting");
    int t = request(XS_READ, "data/greeting", NULL, 0);
    check(t == XS_ERROR && seq(reply, "ENOENT"), "read after rm gives ENOENT");
    t = request(XS_WRITE, "/local/domain/0/xsguest-was-here", "x", 0);
    check(t == XS_ERROR && seq(reply, "EACCES"), "write into dom0's nodes gives EACCES");
    (void)len;
    request(XS_WRITE, "data/result", failures ? failed_step : "PASS", 0);
    say(failures ? "xsguest: RESULT FAIL\n" : "xsguest: RESULT PASS\n");
    idle();
}

static void mode_badidx(void)
{
    check(request(XS_WRITE, "data/result", "before-badidx", 0) == XS_WRITE, "write before corrupting");
    XENSTORE_RING_IDX c = xs->req_cons;
    xs->req_prod = c + 3 * XENSTORE_RING_SIZE;  /* more than a ring ahead: impossible */
    mb();
    notify(xs_port);
    for (int i = 0; i < 100000 && !xs->error; i++) wait_store();
    check(xs->error == XENSTORE_ERROR_RINGIDX, "store reported XENSTORE_ERROR_RINGIDX");
    reconnect("bad indexes");
    check(request(XS_WRITE, "data/result", "recovered-after-badidx", 0) == XS_WRITE, "write after reconnecting");
    idle();
}

static void mode_huge(void)
{
    check(request(XS_WRITE, "data/result", "before-huge", 0) == XS_WRITE, "write before the huge packet");
    struct xsd_sockmsg m = { .type = XS_WRITE, .req_id = next_id++, .tx_id = 0, .len = 100000 };
    static char junk[600];
    for (unsigned i = 0; i < sizeof(junk); i++) junk[i] = 'A';
    ring_put(&m, sizeof(m));
    ring_put(junk, sizeof(junk));
    for (int i = 0; i < 100000 && !xs->error; i++) wait_store();
    check(xs->error == XENSTORE_ERROR_PROTO, "store reported XENSTORE_ERROR_PROTO");
    reconnect("an oversized packet");
    check(request(XS_WRITE, "data/result", "recovered-after-huge", 0) == XS_WRITE, "write after reconnecting");
    idle();
}

static void mode_flood(void)
{
    check(request(XS_WRITE, "data/result", "flooding", 0) == XS_WRITE, "write before flooding");
    static char msg[64];
    struct xsd_sockmsg m = { .type = XS_WRITE, .tx_id = 0 };
    const char *path = "data/flood";
    unsigned long sent = 0;
    for (;;) {
        /* throw the replies away: only the request pressure matters */
        XENSTORE_RING_IDX rc = xs->rsp_cons, rp = xs->rsp_prod;
        mb();
        if (rp != rc) { xs->rsp_cons = rp; notify(xs_port); }
        uint32_t plen = slen(path) + 1 + 8;
        m.req_id = next_id++;
        m.len = plen;
        copy(msg, &m, sizeof(m));
        copy(msg + sizeof(m), path, slen(path) + 1);
        copy(msg + sizeof(m) + slen(path) + 1, "01234567", 8);
        XENSTORE_RING_IDX c = xs->req_cons, p = xs->req_prod;
        mb();
        if (XENSTORE_RING_SIZE - (p - c) < sizeof(m) + plen) { notify(xs_port); wait_store(); continue; }
        if (ring_put(msg, sizeof(m) + plen)) { say("xsguest: flood stopped by the store\n"); idle(); }
        if (++sent % 20000 == 0) { say("xsguest: flood requests sent: "); say_dec(sent); say("\n"); }
    }
}

#ifndef XSGUEST_PVH
/* Xen system time now, in ns, from our vCPU's time record and the TSC. */
static uint64_t system_time_ns(void)
{
    const struct vcpu_time_info *t = &shared->vcpu_info[0].time;
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    uint64_t delta = (((uint64_t)hi << 32) | lo) - t->tsc_timestamp;
    if (t->tsc_shift >= 0) delta <<= t->tsc_shift; else delta >>= -t->tsc_shift;
    return t->system_time + (uint64_t)(((__uint128_t)delta * t->tsc_to_system_mul) >> 32);
}
#endif

/* Waits about `ms` milliseconds (PV: a poll on the store's port with a timeout; else yields). */
static void sleep_ms(unsigned ms)
{
#ifndef XSGUEST_PVH
    if (shared) {
        struct sched_poll poll = { .nr_ports = 1, .timeout = system_time_ns() + (uint64_t)ms * 1000000 };
        set_xen_guest_handle(poll.ports, &xs_port);
        sched_op(SCHEDOP_poll, &poll);
        return;
    }
#endif
    for (unsigned i = 0; i < ms; i++) sched_op(SCHEDOP_yield, 0);
}

static void mode_tick(void)
{
    char value[24];
    for (unsigned long n = 1;; n++) {
        int i = sizeof(value);
        unsigned long v = n;
        value[--i] = 0;
        do { value[--i] = '0' + v % 10; v /= 10; } while (v);
        if (request(XS_WRITE, "data/tick", &value[i], 0) != XS_WRITE) { say("xsguest: a tick write failed\n"); idle(); }
        if (n % 100 == 0) { say("xsguest: ticks written: "); say_dec(n); say("\n"); }
        sleep_ms(50);
    }
}

static void run(const char *cmd)
{
    const char *mode = "good";
    for (const char *c = cmd; c && *c; c++)
        if (c[0] == 'm' && c[1] == 'o' && c[2] == 'd' && c[3] == 'e' && c[4] == '=') { mode = c + 5; break; }
    if (mode[0] == 'h' && mode[1] == 'e') {     /* hello: no Xenstore at all */
#ifdef XSGUEST_PVH
        say("hello from pvh guest\n");
#else
        say("hello from pv guest\n");
#endif
        power_off();
    }
    say("xsguest: starting, mode "); say(mode); say(", store event channel "); say_dec(xs_port);
    say(shared ? ", shared_info mapped\n" : ", no shared_info (yielding)\n");

    if (mode[0] == 'b') mode_badidx();
    else if (mode[0] == 'h') mode_huge();
    else if (mode[0] == 'f') mode_flood();
    else if (mode[0] == 't') mode_tick();
    else mode_good();
    idle();
}

#ifdef XSGUEST_PVH
static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{ __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "0"(leaf), "2"(0)); }

static uint64_t hvm_param(uint32_t index)
{
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = index };
    return hypercall3(__HYPERVISOR_hvm_op, HVMOP_get_param, &p, 0) == 0 ? p.value : 0;
}

/* PVH entry (head32.S): flat 32-bit mode, paging off, so a guest frame's address is pfn << 12. */
void guest_main32(struct hvm_start_info *si)
{
    uint32_t base, a, b, c, d;
    for (base = 0x40000000; base < 0x40010000; base += 0x100) {
        cpuid(base, &a, &b, &c, &d);
        if (b == 0x566e6558 && c == 0x65584d4d && d == 0x4d4d566e) break;  /* "XenVMMXenVMM" */
    }
    cpuid(base + 2, &a, &b, &c, &d);           /* b: the MSR that installs the hypercall page */
    __asm__ volatile("wrmsr" :: "c"(b), "a"((uint32_t)(uintptr_t)hypercall_page), "d"(0));
    cons_port = (evtchn_port_t)hvm_param(HVM_PARAM_CONSOLE_EVTCHN);
    uint64_t cons_pfn = hvm_param(HVM_PARAM_CONSOLE_PFN);
    if (cons_pfn) cons = (struct xencons_interface *)(uintptr_t)(cons_pfn << 12);
    xs_port = (evtchn_port_t)hvm_param(HVM_PARAM_STORE_EVTCHN);
    xs = (struct xenstore_domain_interface *)(uintptr_t)(hvm_param(HVM_PARAM_STORE_PFN) << 12);
    run(si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "");
}
#else
/* PV entry (head.S): start_info in %rdi; the image and its pages are mapped at pfn << 12. */
void guest_main(start_info_t *si)
{
    if (si->console.domU.mfn) {
        cons = (struct xencons_interface *)(machine_to_phys_mapping[si->console.domU.mfn] << 12);
        cons_port = si->console.domU.evtchn;
    }
    xs = (struct xenstore_domain_interface *)(machine_to_phys_mapping[si->store_mfn] << 12);
    xs_port = si->store_evtchn;
    /* map Xen's shared_info over a page of our image so that pending bits can be cleared */
    if (hypercall3(__HYPERVISOR_update_va_mapping, (unsigned long)shared_info_page,
                   (si->shared_info & ~0xfffUL) | 7, UVMF_INVLPG) == 0)
        shared = (shared_info_t *)shared_info_page;
    run((const char *)si->cmd_line);
}
#endif
