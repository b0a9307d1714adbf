/* vchan.c: the server side of a libxenvchan ring in one page of ours — granted to a peer domain, with an unbound event channel — as a byte transport for the Xenstore protocol. */
#include "os.h"
#include "mm.h"

/* xen/io/libxenvchan.h's shared layout (that header pulls in <sys/types.h>, which a freestanding build lacks). */
struct vchan_ring_shared {
    uint32_t cons, prod;
};
struct vchan_interface {
    struct vchan_ring_shared left, right; /* left: client to server; right: server to client */
    uint16_t left_order, right_order;     /* ring sizes as log2; 10 and 11 live inside this page */
    uint8_t cli_live, srv_live;           /* 0 = gone, 1 = connected, 2 = not yet connected */
    uint8_t cli_notify, srv_notify;       /* VCHAN_NOTIFY_* bits the other side asks for */
};
_Static_assert(sizeof(struct vchan_interface) == 24, "libxenvchan layout");
#define VCHAN_NOTIFY_WRITE 0x1
#define VCHAN_NOTIFY_READ 0x2

/*
 * Layout (libxenvchan, orders 10 and 11): struct vchan_interface at offset 0, the client-to-server
 * ring ("left", 1024 bytes) at offset 1024 and the server-to-client ring ("right", 2048 bytes) at
 * offset 2048, all in the one granted page. Indices are free-running; the client owns left.prod and
 * right.cons, we own left.cons and right.prod. Notifications: we always signal after progress (a
 * spare event is harmless to libxenvchan) and ask the client, through cli_notify, to signal us.
 */
#define LEFT_ORDER 10
#define RIGHT_ORDER 11
#define LEFT_SIZE (1u << LEFT_ORDER)
#define RIGHT_SIZE (1u << RIGHT_ORDER)
#define LEFT_OFFSET 1024
#define RIGHT_OFFSET 2048

static inline volatile struct vchan_interface *shared(void *page) { return page; }
static inline volatile uint8_t *left_data(void *page) { return (volatile uint8_t *)page + LEFT_OFFSET; }
static inline volatile uint8_t *right_data(void *page) { return (volatile uint8_t *)page + RIGHT_OFFSET; }

/* Appends `leaf` to `dir` with a slash into buf (size len); 0 if it fits. */
static int join(char *buf, size_t len, const char *dir, const char *leaf)
{
    size_t a = strlen(dir), b = strlen(leaf);
    if (a + 1 + b + 1 > len)
        return -1;
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, leaf, b + 1);
    return 0;
}

void *vchan_offer(uint16_t domid, const char *xs_dir, uint32_t *port)
{
    uint8_t *page = mm_alloc_pages(1); /* zeroed: indices 0, no notify bits */
    if (!page)
        return NULL;
    volatile struct vchan_interface *v = shared(page);
    v->left_order = LEFT_ORDER;
    v->right_order = RIGHT_ORDER;
    v->cli_live = 2; /* the client has not connected yet */
    v->srv_live = 1;
    v->cli_notify = VCHAN_NOTIFY_WRITE;
    uint32_t ref = 0;
    char path[128], number[21];
    int rc = gnttab_grant_access(domid, page, &ref);
    if (rc == 0)
        rc = evtchn_alloc_unbound(domid, port);
    /* event-channel first: libxenvchan's client reads ring-ref, then event-channel */
    if (rc == 0 && (rc = join(path, sizeof(path), xs_dir, "event-channel")) == 0) {
        rt_decimal(*port, number);
        rc = xs_client_write(path, number);
    }
    if (rc == 0 && (rc = join(path, sizeof(path), xs_dir, "ring-ref")) == 0) {
        rt_decimal(ref, number);
        rc = xs_client_write(path, number);
    }
    if (rc != 0) {
        console_puts("vchan: cannot offer the ring, error ");
        console_put_dec((uint64_t)(unsigned)-rc);
        console_puts("\n");
        return NULL; /* the page stays granted: it is not given back */
    }
    return page;
}

int vchan_client_state(void *page) { return shared(page)->cli_live; }

long vchan_read(void *page, uint8_t *buf, size_t len)
{
    volatile struct vchan_interface *v = shared(page);
    uint32_t cons = v->left.cons, prod = v->left.prod;
    rmb();
    if (prod - cons > LEFT_SIZE)
        return -1;
    size_t n = 0;
    while (n < len && cons != prod)
        buf[n++] = left_data(page)[cons++ & (LEFT_SIZE - 1)];
    mb();
    v->left.cons = cons;
    return (long)n;
}

size_t vchan_space(void *page)
{
    volatile struct vchan_interface *v = shared(page);
    uint32_t used = v->right.prod - v->right.cons;
    return used > RIGHT_SIZE ? 0 : RIGHT_SIZE - used;
}

size_t vchan_write(void *page, const uint8_t *buf, size_t len)
{
    volatile struct vchan_interface *v = shared(page);
    size_t space = vchan_space(page);
    if (len > space)
        len = space;
    uint32_t prod = v->right.prod;
    mb();
    for (size_t i = 0; i < len; i++)
        right_data(page)[prod++ & (RIGHT_SIZE - 1)] = buf[i];
    wmb();
    v->right.prod = prod;
    return len;
}

int vchan_has_input(void *page)
{
    volatile struct vchan_interface *v = shared(page);
    return v->left.prod != v->left.cons;
}

void vchan_rearm(void *page)
{
    __atomic_fetch_or(&shared(page)->cli_notify, VCHAN_NOTIFY_WRITE | VCHAN_NOTIFY_READ, __ATOMIC_SEQ_CST);
}

void vchan_reset(void *page)
{
    volatile struct vchan_interface *v = shared(page);
    v->left.cons = v->left.prod;   /* drop a half-sent request */
    v->right.prod = v->right.cons; /* take back replies and events nobody will read */
    wmb();
}
