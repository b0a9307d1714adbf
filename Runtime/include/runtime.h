/* runtime.h: the whole C ABI between the runtime and the Swift image (imported as module XenRuntime). */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/*
 * Conventions: functions returning int return 0 on success and a negative Xen errno
 * (-XEN_Exxx, see <xen/errno.h>) on failure. Event-channel ports and grant references are
 * plain uint32_t; domain ids are uint16_t as in Xen's domid_t.
 * The Swift side supplies two symbols: xenstored_main (below), and xenstored_resume, entered
 * instead of it after a crash (restart in place).
 */

/* ---- entry and exit ------------------------------------------------------------------- */

/** Implemented in Swift (@_cdecl): runs the image; the return value becomes the exit code. */
int xenstored_main(const char *cmdline);

/** Exit codes below 64 belong to Swift; the runtime uses these for its own failures. */
enum rt_exit_code {
    RT_EXIT_OK = 0,          /**< clean shutdown */
    RT_EXIT_PANIC = 96,      /**< runtime panic (rt_panic) */
    RT_EXIT_OOM = 97,        /**< heap exhausted */
    RT_EXIT_STACK_OVERFLOW = 98, /**< a fault in the guard page below the stack (x86_64, arm32) */
    RT_EXIT_CRASH_LOOP = 99, /**< restarts in place kept crashing (rt_crash) */
    RT_EXIT_TRAP_BASE = 100  /**< CPU exception: RT_EXIT_TRAP_BASE + vector (x86: 106 = #UD, a Swift trap;
                                  ARM: + exception vector index, 101 = undefined instruction, a Swift trap) */
};

/** Stops the domain: SCHEDOP_shutdown under Xen, isa-debug-exit (x86) or semihosting exit (ARM) in QEMU. */
void rt_exit(int code) __attribute__((noreturn));

/* ---- restart in place (restart.c) ----------------------------------------------------- */

/** Implemented in Swift (@_cdecl): entered instead of xenstored_main after a crash, on a fresh
 *  stack with Swift's globals and heap as at boot; resumes serving from the durable state. */
int xenstored_resume(const char *cmdline);

/** After a crash (x86 CPU exceptions, heap exhaustion): notes what was being served as the
 *  culprit and restarts in place; exits with `code` instead ("*** exit code N" on the console)
 *  when restarts are not armed, and with RT_EXIT_CRASH_LOOP when more than RT_RESTART_LIMIT
 *  crashes came without a completed round between them. */
void rt_crash(int code) __attribute__((noreturn));
/** Crashes in a row (no completed round between) before the runtime gives up. */
#define RT_RESTART_LIMIT 3
/** From now on (non-zero) a crash restarts in place instead of ending the domain. */
void rt_restart_arm(int on);
/** Restarts in place since boot. */
uint32_t rt_restart_count(void);
/** Crashes since the last rt_round_completed. */
uint32_t rt_consecutive_crashes(void);
/** Notes what is being served (a connection id, 0 = none): a crash records it as its culprit. */
void rt_serving(uint32_t what);
/** What was being served at the last crash (which = 0) and the one before (which = 1). */
uint32_t rt_crash_culprit(int which);
/** A round ended normally: the crash-loop count starts again. */
void rt_round_completed(void);
/** Memory of `bytes` (rounded up to pages) that outlives restarts: the first call allocates it,
 *  later calls (after a restart) return the same region; NULL if larger than the first or no memory. */
void *rt_kept_region(size_t bytes);
/** Gives the kept region's pages beyond its first `bytes` (rounded up to pages) back to the heap
 *  (the stub domain's boot branch store, once its disk holds the history). */
void rt_kept_shrink(size_t bytes);
/** Test hooks: 1 the first time `what` (< 32) is asked since boot, 0 after, restarts included. */
int rt_first_time(unsigned what);
/** Store rings the runtime keeps mapped for Swift across restarts (domain id, page, grant handle, local port). */
#define RT_KEPT_RINGS 1024
/** rt_ring_kept_domid's answer for an unused entry. */
#define RT_NO_DOMID 0xffffu
/** Remembers `domid`'s mapped ring (replacing an earlier entry); -XEN_ENOSPC when the table is full. */
int rt_ring_keep(uint16_t domid, void *page, uint32_t handle, uint32_t port);
/** Forgets `domid`'s ring (after unmapping it). */
void rt_ring_forget(uint16_t domid);
/** The kept ring of `domid` (its page, grant handle and local port), NULL if none. */
void *rt_ring_find(uint16_t domid, uint32_t *handle, uint32_t *port);
/** The domain of kept-ring entry `index` (< RT_KEPT_RINGS), RT_NO_DOMID when unused. */
uint16_t rt_ring_kept_domid(unsigned index);

/* ---- boot facts ----------------------------------------------------------------------- */

/** How the image was entered. */
enum boot_mode {
    BOOT_MODE_PV = 0,        /**< Xen PV, 64-bit entry with start_info */
    BOOT_MODE_PVH = 1,       /**< PVH 32-bit entry with hvm_start_info (Xen PVH or QEMU -kernel) */
    BOOT_MODE_ARM = 2        /**< armv7 zImage entry with a device tree (Xen on ARM, or QEMU -M virt) */
};

/** The entry path taken (enum boot_mode). */
int boot_mode(void);
/** Non-zero when running under Xen (hypercalls available). */
int xen_present(void);
/** The NUL-terminated command line from the loader ("" when there is none). */
const char *boot_cmdline(void);

/* ---- console -------------------------------------------------------------------------- */

/** Writes bytes to every console present (PV ring; x86: Xen debug port 0xE9, COM1; ARM without Xen: PL011). */
void console_write(const uint8_t *buf, size_t len);
/** Waits (bounded) until the PV console ring has been drained by the backend. */
void console_flush(void);

/* ---- time ----------------------------------------------------------------------------- */

/** Nanoseconds since boot (x86: Xen system time, or TSC ticks without Xen; ARM: the generic timer). */
uint64_t clock_monotonic_ns(void);
/** The monotonic clock as of Xen's last update of this vCPU's time record (x86: no TSC reading,
 *  which is a trap where Xen emulates the TSC; the record is renewed whenever the vCPU is scheduled
 *  and at least once a second; ARM: `clock_monotonic_ns`). */
uint64_t clock_coarse_ns(void);
/** Seconds since the epoch from Xen's wall clock (to `clock_coarse_ns`'s precision); 0 without Xen. */
int64_t clock_wall_seconds(void);

/* ---- memory --------------------------------------------------------------------------- */

/** Bytes of the heap region handed out (pages in use, including allocator overhead). */
size_t mm_heap_used(void);
/** Size of the heap region in bytes. */
size_t mm_heap_size(void);
/** Highest number of heap bytes ever in use (page granularity). */
size_t mm_heap_peak(void);
/** One past the highest heap byte ever handed out, counted from the heap's start (page granularity):
 *  how close allocations came to the heap's end. */
size_t mm_heap_reach(void);
/** Deepest use of the boot stack so far, in bytes (the unused part is painted at boot). */
size_t rt_stack_peak(void);
/** PVH: checks that the IDT, GDT, TSS and page tables are as boot left them; prints what changed
 *  with `where` and returns 1 if anything did (0 on PV, ARM, or when unchanged). */
int rt_check_cpu_structures(const char *where);
/** Size of the boot stack in bytes. */
size_t rt_stack_size(void);

/* ---- event channels ------------------------------------------------------------------- */

/** Binds a local port to `remote_port` of `remote_dom`; the new port is stored in *port. */
int evtchn_bind_interdomain(uint16_t remote_dom, uint32_t remote_port, uint32_t *port);
/** Binds a VIRQ (e.g. VIRQ_DOM_EXC = 3) on vCPU 0; the new port is stored in *port. A VIRQ
 *  bound before (by the Swift side before a restart in place) gives its existing port. */
int evtchn_bind_virq(uint32_t virq, uint32_t *port);
/** Allocates a port that `remote_dom` may bind to (EVTCHNOP_alloc_unbound); it is polled like bound ports. */
int evtchn_alloc_unbound(uint16_t remote_dom, uint32_t *port);
/** Closes a port bound by this runtime. */
int evtchn_close(uint32_t port);
/** Signals the remote end of a port. */
int evtchn_notify(uint32_t port);
/** Returns 1 and clears the pending bit if `port` was pending, else 0. */
int evtchn_take_pending(uint32_t port);
/** Blocks until a bound port is pending or `timeout_ns` (0 = forever) passes; returns 1 if one is pending. */
int evtchn_wait(uint64_t timeout_ns);

/** The global VIRQ Xen raises when some domain shuts down or dies (VIRQ_DOM_EXC). */
#define RT_VIRQ_DOM_EXC 3u

/* ---- domains -------------------------------------------------------------------------- */

/** States returned by domain_state. */
enum domain_state_value {
    DOMAIN_STATE_RUNNING = 0,   /**< exists and has not shut down */
    DOMAIN_STATE_SHUTDOWN = 1,  /**< shut down (poweroff, crash, suspend...), not yet destroyed */
    DOMAIN_STATE_DYING = 2,     /**< being destroyed */
    DOMAIN_STATE_GONE = 3       /**< no such domain */
};

/** A domain's state (XEN_DOMCTL_getdomaininfo, permitted to the xenstore domain); negative Xen errno on failure. */
int domain_state(uint16_t domid);
/** Domain ids searched by domain_find_xenstore (the Xenstore domain is created right after dom0). */
#define XENSTORE_SEARCH_DOMIDS 1024
/** Our own domain id, as the domain Xen flags as the Xenstore domain (XEN_DOMINF_xs_domain):
 *  a Xenstore domain is told nobody's id, and the store it serves is its own. A negative Xen
 *  errno when none is found among the first XENSTORE_SEARCH_DOMIDS ids. */
int domain_find_xenstore(void);

/* ---- grant tables --------------------------------------------------------------------- */

/** The grant reference under which the toolstack offers a domain's store page. */
#define GNTTAB_XENSTORE_REF 1u

/** Maps page `ref` granted by `domid` read-write; returns its address (NULL on error) and the handle. */
void *gnttab_map_foreign(uint16_t domid, uint32_t ref, uint32_t *handle);
/** Unmaps a page mapped by gnttab_map_foreign and gives its address space back to the heap. */
int gnttab_unmap_foreign(void *addr, uint32_t handle);
/** Grants `domid` read-write access to one page of ours; the reference is stored in *ref.
 *  Auto-translated guests only (ARM); -XEN_ENOSYS where our grant table cannot be mapped. */
int gnttab_grant_access(uint16_t domid, void *page, uint32_t *ref);

/* ---- our own Xenstore client connection (an ordinary guest's store ring) -------------- */

/** Writes `value` at `path` (relative paths are under /local/domain/<our domid>) through dom0's
 *  xenstored; waits for the reply (bounded). -XEN_ENOSYS when we have no store ring. */
int xs_client_write(const char *path, const char *value);
/** Reads `path` into buf (NUL-terminated); returns the value's length, -XEN_ENOENT if absent, -XEN_E2BIG if too long. */
int xs_client_read(const char *path, char *buf, size_t size);

/* ---- a virtual block device (blkif frontend, one request of up to BLKFRONT_MAX_PAGES pages at a time) */

/** Pages one request carries (blkif's direct segments): the most blkfront_read/write take at once. */
#define BLKFRONT_MAX_PAGES 11

/** Connects to virtual device `vdev` (51712 = xvda) under device/vbd/, waiting up to `timeout_ns`
 *  for the toolstack to create it and the backend to connect; the handshake goes through dom0's
 *  xenstored (an ordinary guest). 0 on success. */
int blkfront_open(uint32_t vdev, uint64_t timeout_ns);
/** The frontend's half of the handshake for a caller that runs the xenbus steps itself (the
 *  Xenstore domain, on its own store): grants the ring and data pages to `backend_id` and
 *  allocates an unbound event channel; gives the ring-ref and event-channel to publish. Repeated
 *  calls give the same values. 0 or a negative Xen errno. */
int blkfront_prepare(uint16_t backend_id, uint32_t *ring_ref, uint32_t *event_channel);
/** The backend reached Connected with this geometry (its `sectors`, `sector-size` and
 *  `feature-flush-cache` nodes): requests may start. 0, or -XEN_EINVAL before blkfront_prepare. */
int blkfront_attach(uint64_t sectors, uint32_t sector_size, int flush_supported);
/** The blkif protocol name of this architecture ("x86_64-abi", "arm-abi"), for the frontend's `protocol` node. */
const char *blkfront_protocol(void);
/** Starts reading the first block without waiting (the Xenstore domain: the backend may need
 *  our store's answers before it serves the ring, so the event loop keeps serving meanwhile). */
int blkfront_probe_start(void);
/** The probe's outcome so far: 1 answered (also every call after), 0 not yet, -XEN_EIO failed. */
int blkfront_probe_poll(void);
/** How far the handshake got (it outlives a restart in place, SelfDisk.swift resumes from it). */
enum blkfront_phase {
    BLKFRONT_NONE = 0,      /**< nothing granted yet */
    BLKFRONT_PREPARED = 1,  /**< ring granted, event channel allocated (blkfront_prepare) */
    BLKFRONT_ATTACHED = 2,  /**< the backend's geometry taken (blkfront_attach), no probe yet */
    BLKFRONT_PROBING = 3,   /**< the first read is out */
    BLKFRONT_READY = 4,     /**< the first read was answered: requests may start */
};
enum blkfront_phase blkfront_phase(void);
/** The disk's event channel (0 before blkfront_prepare); bound like every port the event loop
 *  waits on, so the loop must take its pending bit each turn. */
uint32_t blkfront_event_port(void);
/** The connected device's size in bytes (0 when not connected). */
uint64_t blkfront_size(void);
/** Reads `len` bytes (a multiple of 512, at most BLKFRONT_MAX_PAGES pages) at byte `offset` (a multiple of 512). */
int blkfront_read(uint64_t offset, uint8_t *buf, size_t len);
/** Writes `len` bytes (a multiple of 512, at most BLKFRONT_MAX_PAGES pages) at byte `offset` (a multiple of 512). */
int blkfront_write(uint64_t offset, const uint8_t *buf, size_t len);
/** Makes earlier writes durable (BLKIF_OP_FLUSH_DISKCACHE when the backend offers it). */
int blkfront_flush(void);

/* ---- xenstore rings (xs_wire.h layout; the logic is Swift: Sources/XenstoreRing) ----------- */

/** Reads the 32-bit word at `offset` of a shared page exactly once (volatile). */
uint32_t xsring_load32(const void *page, size_t offset);
/** Writes the 32-bit word at `offset` of a shared page. */
void xsring_store32(void *page, size_t offset, uint32_t value);
/** Read barrier: earlier loads complete before later ones. */
void xsring_rmb(void);
/** Write barrier: earlier stores are visible before later ones. */
void xsring_wmb(void);
/** Full barrier. */
void xsring_mb(void);

/* ---- vchan rings (libxenvchan server side, orders 10/11 in one page) ------------------- */

/** Offers a vchan to `domid`: a granted page and an unbound port, published as `xs_dir`/ring-ref and
 *  `xs_dir`/event-channel through xs_client_write, as libxenvchan_server_init does. Returns the page
 *  (NULL on error) and the local port in *port. */
void *vchan_offer(uint16_t domid, const char *xs_dir, uint32_t *port);
/** The client's state: 0 = it has gone, 1 = connected, 2 = not connected yet. */
int vchan_client_state(void *ring);
/** Copies up to `len` client bytes out of the ring; returns the count, or -1 if its indices are corrupt. */
long vchan_read(void *ring, uint8_t *buf, size_t len);
/** Copies up to `len` bytes into the ring to the client; returns the count written. */
size_t vchan_write(void *ring, const uint8_t *buf, size_t len);
/** Free space of the ring to the client, in bytes. */
size_t vchan_space(void *ring);
/** Non-zero if the client has sent bytes not yet read. */
int vchan_has_input(void *ring);
/** Asks the client to signal our port when it writes or reads (call before sleeping). */
void vchan_rearm(void *ring);
/** After the client has gone: drops its unread request bytes and our unread output. */
void vchan_reset(void *ring);

#endif
