/* xenshim.c: an LD_PRELOAD library that lets Debian's C xenstored and oxenstored (Xen 4.17) run on a host without Xen, serving their Unix socket only (for `make bench`). */
/*
 * Without a hypervisor both daemons stop at start-up: they open the control interface, event channels
 * and grant tables, read dom0's ring location from /proc/xen, and oxenstored raises its file limit to
 * a value only a privileged process may set. This library answers exactly those calls:
 *
 *   libxenctrl    an interface handle that is never used for hypercalls; domain listings are empty;
 *                 mapping a guest's page fails with EPERM (so an INTRODUCE fails cleanly)
 *   libxenevtchn  a handle whose descriptor is an eventfd nobody signals: no event ever arrives;
 *                 binds hand out increasing port numbers, everything else succeeds doing nothing
 *   libxengnttab  a handle; mapping a grant fails with ENOSYS
 *   open()        /proc/xen/xsd_port reads "1"; /proc/xen/xsd_kva is one zeroed page (an idle dom0 ring)
 *   setrlimit()   RLIMIT_NOFILE refused with EPERM is retried within the current hard limit
 *   bind()        with XENSHIM_SOCKET set, a bind to oxenstored's built-in /run/xenstored/socket (or
 *                 /var/run/...) goes to that path instead (C xenstored takes XENSTORED_RUNDIR itself)
 *
 * The libraries' types are not needed: handles are opaque to the callers, so they are declared as void *.
 * XENSHIM_TRACE=1 prints every answered call on stderr.
 * Build: gcc -O2 -Wall -shared -fPIC -o libxenshim.so xenshim.c -ldl
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
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Prints one line on stderr when XENSHIM_TRACE is set. */
static void trace(const char *format, ...)
{
    static int enabled = -1;
    if (enabled < 0)
        enabled = getenv("XENSHIM_TRACE") != NULL;
    if (!enabled)
        return;
    va_list args;
    va_start(args, format);
    fprintf(stderr, "xenshim: ");
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
}

/* Finds the next definition of a libc function, the one this library stands in front of. */
static void *next_definition(const char *name)
{
    void *symbol = dlsym(RTLD_NEXT, name);
    if (!symbol) {
        fprintf(stderr, "xenshim: no libc definition of %s\n", name);
        abort();
    }
    return symbol;
}

/* ---- libxenctrl ---- */

static char control_handle;     /* any distinct non-NULL address will do */

void *xc_interface_open(void *logger, void *domain_builder_logger, unsigned open_flags)
{
    (void)logger; (void)domain_builder_logger; (void)open_flags;
    trace("xc_interface_open");
    return &control_handle;
}

int xc_interface_close(void *handle) { (void)handle; return 0; }

/* No domain exists: both listings return zero entries. */
int xc_domain_getinfo(void *handle, uint32_t first_domain, unsigned max_domains, void *info)
{
    (void)handle; (void)first_domain; (void)max_domains; (void)info;
    trace("xc_domain_getinfo: no domains");
    return 0;
}

int xc_domain_getinfolist(void *handle, uint32_t first_domain, unsigned max_domains, void *info)
{
    (void)handle; (void)first_domain; (void)max_domains; (void)info;
    trace("xc_domain_getinfolist: no domains");
    return 0;
}

void *xc_map_foreign_range(void *handle, uint32_t domain, int size, int protection, unsigned long frame)
{
    (void)handle; (void)size; (void)protection; (void)frame;
    trace("xc_map_foreign_range(domain %u): refused", domain);
    errno = EPERM;
    return NULL;
}

/* ---- libxenevtchn ---- */

struct event_channels {
    int silent_fd;              /* an eventfd that is never written: select/poll never see it ready */
    unsigned next_port;
};

void *xenevtchn_open(void *logger, unsigned open_flags)
{
    (void)logger; (void)open_flags;
    struct event_channels *channels = calloc(1, sizeof *channels);
    if (!channels)
        return NULL;
    channels->silent_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (channels->silent_fd < 0) {
        free(channels);
        return NULL;
    }
    channels->next_port = 2;
    trace("xenevtchn_open: fd %d", channels->silent_fd);
    return channels;
}

void *xenevtchn_fdopen(void *logger, int fd, unsigned open_flags)
{
    (void)fd;
    return xenevtchn_open(logger, open_flags);
}

int xenevtchn_close(void *handle)
{
    struct event_channels *channels = handle;
    if (channels) {
        close(channels->silent_fd);
        free(channels);
    }
    return 0;
}

int xenevtchn_fd(void *handle) { return ((struct event_channels *)handle)->silent_fd; }

int xenevtchn_bind_virq(void *handle, unsigned virq)
{
    trace("xenevtchn_bind_virq(%u)", virq);
    return (int)((struct event_channels *)handle)->next_port++;
}

int xenevtchn_bind_interdomain(void *handle, uint32_t domain, unsigned remote_port)
{
    (void)domain; (void)remote_port;
    return (int)((struct event_channels *)handle)->next_port++;
}

int xenevtchn_notify(void *handle, unsigned port) { (void)handle; (void)port; return 0; }
int xenevtchn_unmask(void *handle, unsigned port) { (void)handle; (void)port; return 0; }
int xenevtchn_unbind(void *handle, unsigned port) { (void)handle; (void)port; return 0; }

/* Nothing is ever pending. */
int xenevtchn_pending(void *handle)
{
    (void)handle;
    errno = EAGAIN;
    return -1;
}

/* ---- libxengnttab ---- */

static char grant_table_handle;

void *xengnttab_open(void *logger, unsigned open_flags)
{
    (void)logger; (void)open_flags;
    trace("xengnttab_open");
    return &grant_table_handle;
}

int xengnttab_close(void *handle) { (void)handle; return 0; }
int xengnttab_set_max_grants(void *handle, uint32_t count) { (void)handle; (void)count; return 0; }

void *xengnttab_map_grant_ref(void *handle, uint32_t domain, uint32_t reference, int protection)
{
    (void)handle; (void)reference; (void)protection;
    trace("xengnttab_map_grant_ref(domain %u): refused", domain);
    errno = ENOSYS;
    return NULL;
}

int xengnttab_unmap(void *handle, void *address, uint32_t count)
{
    (void)handle; (void)address; (void)count;
    return 0;
}

/* ---- libc: open() of the /proc/xen files dom0's daemon reads ---- */

/* An in-memory stand-in for /proc/xen/xsd_port or xsd_kva; -1 with errno on failure. */
static int proc_xen_file(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    int ready = strcmp(name, "xsd_port") == 0
        ? write(fd, "1\n", 2) == 2 && lseek(fd, 0, SEEK_SET) == 0
        : ftruncate(fd, 4096) == 0;          /* xsd_kva: one zeroed, mappable page */
    if (!ready) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    trace("open(/proc/xen/%s): memfd %d", name, fd);
    return fd;
}

/* The file name under /proc/xen/ that this library answers for, or NULL. */
static const char *answered_proc_xen_name(const char *path)
{
    static const char prefix[] = "/proc/xen/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *name = path + sizeof prefix - 1;
    return strcmp(name, "xsd_port") == 0 || strcmp(name, "xsd_kva") == 0 ? name : NULL;
}

int open(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list args;
        va_start(args, flags);
        mode = va_arg(args, mode_t);
        va_end(args);
    }
    const char *name = answered_proc_xen_name(path);
    if (name)
        return proc_xen_file(name);
    if (!real)
        real = (int (*)(const char *, int, ...))next_definition("open");
    return real(path, flags, mode);
}

/* oxenstored calls open64; on a 64-bit C library it is the same call as open. */
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

/* ---- libc: setrlimit(RLIMIT_NOFILE) above the hard limit ---- */

int setrlimit(__rlimit_resource_t resource, const struct rlimit *limit)
{
    static int (*real)(__rlimit_resource_t, const struct rlimit *);
    if (!real)
        real = (int (*)(__rlimit_resource_t, const struct rlimit *))next_definition("setrlimit");
    int result = real(resource, limit);
    struct rlimit current;
    if (result == 0 || errno != EPERM || resource != RLIMIT_NOFILE || getrlimit(RLIMIT_NOFILE, &current) != 0)
        return result;
    struct rlimit allowed = *limit;
    if (allowed.rlim_max > current.rlim_max)
        allowed.rlim_max = current.rlim_max;
    if (allowed.rlim_cur > allowed.rlim_max)
        allowed.rlim_cur = allowed.rlim_max;
    trace("setrlimit(RLIMIT_NOFILE, %lu): lowered to %lu", (unsigned long)limit->rlim_max,
          (unsigned long)allowed.rlim_max);
    return real(resource, &allowed);
}

/* ---- libc: bind() of oxenstored's built-in socket path ---- */

int bind(int fd, const struct sockaddr *address, socklen_t length)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (int (*)(int, const struct sockaddr *, socklen_t))next_definition("bind");
    const char *wanted = getenv("XENSHIM_SOCKET");
    if (!wanted || !address || address->sa_family != AF_UNIX)
        return real(fd, address, length);
    const char *path = ((const struct sockaddr_un *)address)->sun_path;
    if (strcmp(path, "/run/xenstored/socket") != 0 && strcmp(path, "/var/run/xenstored/socket") != 0)
        return real(fd, address, length);
    struct sockaddr_un moved = { .sun_family = AF_UNIX };
    if (strlen(wanted) >= sizeof moved.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(moved.sun_path, wanted);
    unlink(moved.sun_path);
    trace("bind(%s): %s instead", path, moved.sun_path);
    return real(fd, (const struct sockaddr *)&moved, sizeof moved);
}
