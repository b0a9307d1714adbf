/*
 * ringshim.c - lets C xenstored and oxenstored serve an emulated guest ring without a hypervisor.
 *
 * LD_PRELOADed in FRONT of the peers harness's libxenshim.so (whose fakes make the daemons start
 * at all), for the "under attack" bench point: the guest is an unprivileged domain on a real
 * xenstore ring, the same files our daemon serves with `xenstored --ring-dir DIR`:
 *
 *   DIR/<domid>/page        4096 bytes, struct xenstore_domain_interface (mapped MAP_SHARED)
 *   DIR/<domid>/to-store    FIFO: the guest writes a byte to notify the store
 *   DIR/<domid>/to-domain   FIFO: the store writes a byte to notify the guest
 *
 * DIR is $XS_SHIM_RING_DIR. The guest (xsbench's attacker) creates the files, then dom0 sends
 * INTRODUCE. What is faked here, over libxenshim's "no hypervisor" fakes:
 *   xengnttab_map_grant_ref / xengnttab_unmap   (C xenstored maps a guest's ring by grant)
 *   xc_map_foreign_range                        (oxenstored maps it by frame number)
 *     -> mmap of DIR/<domid>/page
 *   xc_domain_getinfo                           -> a domain with a page under DIR exists
 *   xenevtchn_*: the handle's fd is an epoll set of every bound domain's to-store FIFO;
 *     bind_interdomain(domid) opens that domain's FIFOs and returns a local port;
 *     pending() returns the port of one FIFO with bytes (draining it), or a port bound to
 *     nothing when none has; notify(port) writes a byte to that domain's to-domain FIFO.
 *     Ports of domains without files (dom0's idle ring page from libxenshim) never fire.
 *   open("/proc/xen/xsd_port") -> "1" without a newline (oxenstored must run WITHOUT
 *     --no-domain-init here: only then does it poll its event channel at all).
 *
 * Build: gcc -O2 -shared -fPIC -o libringshim.so bench/ringshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define MAX_PORTS 64
#define PAGE_BYTES 4096
#define FIRST_PORT 2
#define SPARE_PORT 4000   /* returned by pending() when no FIFO has a byte; bound to nothing */

struct bound_port {
    int used;
    uint32_t domid;
    int to_store;         /* read end, in the epoll set; -1 for a domain without files */
    int to_domain;        /* write end; -1 likewise */
};

/* The event channel handle (opaque to the daemons). */
struct xenevtchn_handle {
    int epoll_fd;
    struct bound_port ports[MAX_PORTS];
};

static const char *ring_path(uint32_t domid, const char *leaf, char *buf, size_t size)
{
    const char *dir = getenv("XS_SHIM_RING_DIR");
    if (!dir) return NULL;
    snprintf(buf, size, "%s/%u/%s", dir, domid, leaf);
    return buf;
}

/* The page of an emulated domain, mapped shared; NULL (errno set) if it has none. */
static void *map_domain_page(uint32_t domid)
{
    char path[512];
    if (!ring_path(domid, "page", path, sizeof path)) { errno = ENOSYS; return NULL; }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return NULL;
    void *page = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return page == MAP_FAILED ? NULL : page;
}

static int domain_has_page(uint32_t domid)
{
    char path[512];
    struct stat st;
    return ring_path(domid, "page", path, sizeof path) && stat(path, &st) == 0 && st.st_size == PAGE_BYTES;
}

/* ---------------- ring mapping ---------------- */
void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{ (void)xgt; (void)ref; (void)prot; return map_domain_page(domid); }

int xengnttab_unmap(xengnttab_handle *xgt, void *start, uint32_t count)
{ (void)xgt; return munmap(start, (size_t)count * PAGE_BYTES); }

void *xc_map_foreign_range(xc_interface *xch, uint32_t dom, int size, int prot, unsigned long mfn)
{ (void)xch; (void)size; (void)prot; (void)mfn; return map_domain_page(dom); }

/* A domain with a page under the rings directory exists and runs; others are asked of the shim behind. */
int xc_domain_getinfo(xc_interface *xch, uint32_t first, unsigned int max, xc_dominfo_t *info)
{
    if (max >= 1 && domain_has_page(first)) {
        memset(info, 0, sizeof *info);
        info->domid = first;
        info->running = 1;
        return 1;
    }
    int (*next)(xc_interface *, uint32_t, unsigned int, xc_dominfo_t *) = dlsym(RTLD_NEXT, "xc_domain_getinfo");
    return next ? next(xch, first, max, info) : 0;
}

/* ---------------- dom0's event channel number ---------------- */
/* oxenstored only polls its event channel when it sets up dom0's ring (no --no-domain-init),
 * and then parses /proc/xen/xsd_port strictly: libxenshim's "1\n" fails, the kernel's "1" works. */
static int xsd_port_file(void)
{
    int fd = memfd_create("xsd_port", MFD_CLOEXEC);
    if (fd >= 0 && (write(fd, "1", 1) != 1 || lseek(fd, 0, SEEK_SET) != 0)) { close(fd); return -1; }
    return fd;
}

#define OPEN_WRAPPER(name)                                                          \
int name(const char *path, int flags, ...)                                          \
{                                                                                   \
    mode_t mode = 0;                                                                \
    if (flags & (O_CREAT | O_TMPFILE)) {                                            \
        va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap);     \
    }                                                                               \
    if (!strcmp(path, "/proc/xen/xsd_port")) return xsd_port_file();                \
    int (*next)(const char *, int, ...) = dlsym(RTLD_NEXT, #name);                  \
    return next(path, flags, mode);                                                 \
}
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

/* ---------------- event channels ---------------- */
xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)logger; (void)flags;
    xenevtchn_handle *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epoll_fd < 0) { free(h); return NULL; }
    return h;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd, unsigned flags)
{ (void)fd; return xenevtchn_open(logger, flags); }

int xenevtchn_close(xenevtchn_handle *h)
{
    if (!h) return 0;
    for (int i = 0; i < MAX_PORTS; i++) {
        if (h->ports[i].to_store >= 0 && h->ports[i].used) close(h->ports[i].to_store);
        if (h->ports[i].to_domain >= 0 && h->ports[i].used) close(h->ports[i].to_domain);
    }
    close(h->epoll_fd);
    free(h);
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *h) { return h->epoll_fd; }

static struct bound_port *port_slot(xenevtchn_handle *h, unsigned port)
{
    return port < MAX_PORTS && h->ports[port].used ? &h->ports[port] : NULL;
}

/* Binds the lowest free port, as Xen does: an unbind then bind (oxenstored's "rebind" on a second
 * INTRODUCE) gets the same port back, which oxenstored's port-to-connection table relies on. */
static int new_port(xenevtchn_handle *h, uint32_t domid, int to_store, int to_domain)
{
    unsigned port = FIRST_PORT;
    while (port < MAX_PORTS && h->ports[port].used) port++;
    if (port >= MAX_PORTS) { errno = ENOSPC; return -1; }
    h->ports[port] = (struct bound_port){ 1, domid, to_store, to_domain };
    if (to_store >= 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = port };
        if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, to_store, &ev) != 0) return -1;
    }
    return (int)port;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *h, unsigned int virq)
{ (void)virq; return new_port(h, UINT32_MAX, -1, -1); }

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *h, uint32_t domid, evtchn_port_t remote_port)
{
    (void)remote_port;
    char store_path[512], domain_path[512];
    int to_store = -1, to_domain = -1;
    if (ring_path(domid, "to-store", store_path, sizeof store_path) &&
        ring_path(domid, "to-domain", domain_path, sizeof domain_path) && domain_has_page(domid)) {
        /* O_RDWR: never end-of-file, never blocks on open, whether or not the guest has it open */
        to_store = open(store_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        to_domain = open(domain_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (to_store < 0 || to_domain < 0) {
            if (to_store >= 0) close(to_store);
            if (to_domain >= 0) close(to_domain);
            return -1;
        }
    }
    return new_port(h, domid, to_store, to_domain);
}

int xenevtchn_notify(xenevtchn_handle *h, evtchn_port_t port)
{
    struct bound_port *p = port_slot(h, port);
    if (p && p->to_domain >= 0) {
        char byte = 1;
        if (write(p->to_domain, &byte, 1) < 0 && errno != EAGAIN) return -1;  /* full: already pending */
    }
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *h)
{
    struct epoll_event ev;
    if (epoll_wait(h->epoll_fd, &ev, 1, 0) != 1) return SPARE_PORT;
    struct bound_port *p = port_slot(h, ev.data.u32);
    if (p) {
        char drain[256];
        while (read(p->to_store, drain, sizeof drain) > 0) {}
    }
    return (int)ev.data.u32;
}

int xenevtchn_unmask(xenevtchn_handle *h, evtchn_port_t port) { (void)h; (void)port; return 0; }

int xenevtchn_unbind(xenevtchn_handle *h, evtchn_port_t port)
{
    struct bound_port *p = port_slot(h, port);
    if (!p) return 0;
    if (p->to_store >= 0) { epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, p->to_store, NULL); close(p->to_store); }
    if (p->to_domain >= 0) close(p->to_domain);
    memset(p, 0, sizeof *p);
    return 0;
}
