/* traps.c (arm32): reports a CPU exception (undefined instruction = Swift trap, aborts) on the console and exits RT_EXIT_TRAP_BASE + vector, or RT_EXIT_STACK_OVERFLOW for a fault in the stack's guard page. */
#include "os.h"

/* What the vector stubs in start.S push: r0-r12, then the faulting instruction's address. */
struct trap_frame {
    uint32_t r[13];
    uint32_t pc;
};

#define NR_VECTORS 8
#define VECTOR_PREFETCH_ABORT 3
#define VECTOR_DATA_ABORT 4

static const char *const vector_names[NR_VECTORS] = {
    "reset", "undefined instruction (Swift trap)", "supervisor call", "prefetch abort",
    "data abort", "unused vector", "IRQ", "FIQ",
};

static int in_trap;

/* The unmapped page below the boot stack (start.S). */
extern char stack_guard[];

/* The vectors are installed by start.S (VBAR) before anything can fault. */
void init_traps(void) {}

static uint32_t read_spsr(void)
{
    uint32_t v;
    __asm__ volatile("mrs %0, spsr" : "=r"(v));
    return v;
}

static void put_reg(const char *name, uint32_t v)
{
    console_puts(name);
    console_put_hex(v);
}

void trap_report(const struct trap_frame *f, unsigned vector) __attribute__((noreturn));
void trap_report(const struct trap_frame *f, unsigned vector)
{
    vector &= NR_VECTORS - 1;
    if (in_trap++) /* a fault while reporting: do not recurse */
        rt_exit(RT_EXIT_TRAP_BASE + (int)vector);
    uint32_t dfar = 0;
    if (vector == VECTOR_DATA_ABORT)
        __asm__ volatile("mrc p15, 0, %0, c6, c0, 0" : "=r"(dfar));
    int overflow = vector == VECTOR_DATA_ABORT && dfar - (uint32_t)(uintptr_t)stack_guard < 4096u;
    int code = overflow ? RT_EXIT_STACK_OVERFLOW : RT_EXIT_TRAP_BASE + (int)vector;
    console_puts("\n*** CRASH: CPU exception ");
    console_put_dec(vector);
    console_puts(" ");
    console_puts(vector_names[vector]);
    if (overflow)
        console_puts(": stack overflow (guard page below the stack)");
    put_reg("\n    pc=", f->pc);
    put_reg(" cpsr=", read_spsr());
    if (vector == VECTOR_DATA_ABORT) {
        uint32_t dfsr;
        __asm__ volatile("mrc p15, 0, %0, c5, c0, 0" : "=r"(dfsr));
        put_reg(" dfsr=", dfsr);
        put_reg(" dfar=", dfar);
    } else if (vector == VECTOR_PREFETCH_ABORT) {
        uint32_t ifsr, ifar;
        __asm__ volatile("mrc p15, 0, %0, c5, c0, 1" : "=r"(ifsr));
        __asm__ volatile("mrc p15, 0, %0, c6, c0, 2" : "=r"(ifar));
        put_reg(" ifsr=", ifsr);
        put_reg(" ifar=", ifar);
    }
    for (int i = 0; i < 13; i++) {
        console_puts(i % 4 == 0 ? "\n    r" : " r");
        console_put_dec((uint64_t)i);
        put_reg("=", f->r[i]);
    }
    console_puts("\n*** exit code ");
    console_put_dec((uint64_t)code);
    console_puts("\n");
    rt_exit(code);
}

void arch_restart_traps(void) { in_trap = 0; }

/* Only the x86 PVH image fingerprints its CPU structures (issue 15). */
int rt_check_cpu_structures(const char *where)
{
    (void)where;
    return 0;
}
