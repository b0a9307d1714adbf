/* runtime.h: the whole C ABI between the runtime and the Swift image (imported as module XenRuntime). */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/*
 * Conventions: functions returning int return 0 on success and a negative Xen errno
 * (-XEN_Exxx, see <xen/errno.h>) on failure. Event-channel ports and grant references are
 * plain uint32_t; domain ids are uint16_t as in Xen's domid_t.
 * The Swift side supplies exactly one symbol, xenstored_main (below).
 */

/* ---- entry and exit ------------------------------------------------------------------- */

/** Implemented in Swift (@_cdecl): runs the image; the return value becomes the exit code. */
int xenstored_main(const char *cmdline);

/** Exit codes below 64 belong to Swift; the runtime uses these for its own failures. */
enum rt_exit_code {
    RT_EXIT_OK = 0,          /**< clean shutdown */
    RT_EXIT_PANIC = 96,      /**< runtime panic (rt_panic) */
    RT_EXIT_OOM = 97,        /**< heap exhausted */
    RT_EXIT_TRAP_BASE = 100  /**< CPU exception: RT_EXIT_TRAP_BASE + vector (e.g. 106 = #UD, a Swift trap) */
};

/** Stops the domain: SCHEDOP_shutdown under Xen, isa-debug-exit (QEMU) otherwise. */
void rt_exit(int code) __attribute__((noreturn));

/* ---- boot facts ----------------------------------------------------------------------- */

/** How the image was entered. */
enum boot_mode {
    BOOT_MODE_PV = 0,        /**< Xen PV, 64-bit entry with start_info */
    BOOT_MODE_PVH = 1        /**< PVH 32-bit entry with hvm_start_info (Xen PVH or QEMU -kernel) */
};

/** The entry path taken (enum boot_mode). */
int boot_mode(void);
/** Non-zero when running under Xen (hypercalls available). */
int xen_present(void);
/** The NUL-terminated command line from the loader ("" when there is none). */
const char *boot_cmdline(void);

/* ---- console -------------------------------------------------------------------------- */

/** Writes bytes to every console present (PV ring, Xen debug port 0xE9, COM1). */
void console_write(const uint8_t *buf, size_t len);
/** Waits (bounded) until the PV console ring has been drained by the backend. */
void console_flush(void);

/* ---- time ----------------------------------------------------------------------------- */

/** Nanoseconds since boot (Xen system time, or TSC ticks without Xen). */
uint64_t clock_monotonic_ns(void);
/** Seconds since the epoch from Xen's wall clock; 0 without Xen. */
int64_t clock_wall_seconds(void);

/* ---- memory --------------------------------------------------------------------------- */

/** Bytes of the heap region handed out (pages in use, including allocator overhead). */
size_t mm_heap_used(void);
/** Size of the heap region in bytes. */
size_t mm_heap_size(void);

/* ---- event channels ------------------------------------------------------------------- */

/** Binds a local port to `remote_port` of `remote_dom`; the new port is stored in *port. */
int evtchn_bind_interdomain(uint16_t remote_dom, uint32_t remote_port, uint32_t *port);
/** Binds a VIRQ (e.g. VIRQ_DOM_EXC = 3) on vCPU 0; the new port is stored in *port. */
int evtchn_bind_virq(uint32_t virq, uint32_t *port);
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

/* ---- grant tables --------------------------------------------------------------------- */

/** The grant reference under which the toolstack offers a domain's store page. */
#define GNTTAB_XENSTORE_REF 1u

/** Maps page `ref` granted by `domid` read-write; returns its address (NULL on error) and the handle. */
void *gnttab_map_foreign(uint16_t domid, uint32_t ref, uint32_t *handle);
/** Unmaps a page mapped by gnttab_map_foreign and gives its address space back to the heap. */
int gnttab_unmap_foreign(void *addr, uint32_t handle);

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

#endif
