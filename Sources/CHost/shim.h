/* C facilities of the host shell not exposed by Glibc's Swift overlay: zlib (git objects), syncfs, closefrom for spawned processes, shared-page atomics, the C heap's figures. */
#include <zlib.h>
int syncfs(int fd);

/* The C heap's figures (mallinfo2) for CONTROL memreport. */
#include <malloc.h>

/* Background processes of the host daemon (git repack) must not inherit its sockets (glibc 2.34+). */
#include <spawn.h>
int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/* Shared ring pages (host ring emulation, mapped Xen pages): one-shot 32-bit index accesses and
 * fences for Sources/XenstoreHost/SharedRingPage.swift. Inline, so they cost one instruction. */
#include <stdint.h>
#include <stddef.h>
static inline uint32_t xs_shared_load32(const void *page, size_t offset)
{
    return __atomic_load_n((const uint32_t *)((const char *)page + offset), __ATOMIC_ACQUIRE);
}
static inline void xs_shared_store32(void *page, size_t offset, uint32_t value)
{
    __atomic_store_n((uint32_t *)((char *)page + offset), value, __ATOMIC_RELEASE);
}
static inline void xs_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void xs_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void xs_fence_full(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
