/* traps.c: installs CPU exception handlers (IDT for PVH/native, trap table for Xen PV) and reports a crash on the console. */
#include "os.h"
#include "hypervisor.h"

/* Layout pushed by traps.S: general registers, then vector/error, then the CPU frame. */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

#define NR_EXCEPTIONS 32

extern const uint64_t trap_entry_table[NR_EXCEPTIONS];
extern const uint64_t pv_trap_entry_table[NR_EXCEPTIONS];

/* A 64-bit interrupt gate. */
struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

static struct idt_gate idt[NR_EXCEPTIONS] __attribute__((aligned(16)));
static struct trap_info pv_trap_table[NR_EXCEPTIONS + 1];
static int in_trap;

static const char *const trap_names[NR_EXCEPTIONS] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode (Swift trap)", "#NM device not available", "#DF double fault",
    "coprocessor overrun", "#TS invalid TSS", "#NP segment not present", "#SS stack fault",
    "#GP general protection", "#PF page fault", "reserved", "#MF x87 error", "#AC alignment check",
    "#MC machine check", "#XM SIMD error", "#VE virtualization", "#CP control protection",
    "reserved", "reserved", "reserved", "reserved", "reserved", "reserved", "#HV injection",
    "#VC VMM communication", "#SX security", "reserved",
};

static void init_idt(void)
{
    for (int v = 0; v < NR_EXCEPTIONS; v++) {
        uint64_t handler = trap_entry_table[v];
        idt[v] = (struct idt_gate){
            .offset_low = (uint16_t)handler,
            .selector = 0x08,              /* boot_gdt 64-bit code */
            .ist = 0,
            .type_attr = 0x8E,             /* present, DPL 0, interrupt gate */
            .offset_mid = (uint16_t)(handler >> 16),
            .offset_high = (uint32_t)(handler >> 32),
        };
    }
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) desc = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
    __asm__ volatile("lidt %0" :: "m"(desc));
}

static void init_pv_trap_table(void)
{
    for (int v = 0; v < NR_EXCEPTIONS; v++) {
        pv_trap_table[v] = (struct trap_info){
            .vector = (uint8_t)v,
            .flags = (v == 3 || v == 4) ? 3 : 0,   /* int3/into callable from any ring */
            .cs = FLAT_KERNEL_CS,
            .address = pv_trap_entry_table[v],
        };
    }
    /* pv_trap_table[NR_EXCEPTIONS] stays zero: the terminator */
    if (HYPERVISOR_set_trap_table(pv_trap_table) != 0)
        console_puts("traps: set_trap_table failed\n");
}

void init_traps(void)
{
    if (boot.mode == BOOT_MODE_PV)
        init_pv_trap_table();
    else
        init_idt();
}

static void put_reg(const char *name, uint64_t v)
{
    console_puts(name);
    console_put_hex(v);
}

/* Called from traps.S with interrupts off; prints the crash and exits RT_EXIT_TRAP_BASE + vector. */
void trap_report(const struct trap_frame *f) __attribute__((noreturn));
void trap_report(const struct trap_frame *f)
{
    unsigned v = (unsigned)(f->vector & 31);
    if (in_trap++) /* a fault while reporting: do not recurse */
        rt_exit(RT_EXIT_TRAP_BASE + (int)v);
    console_puts("\n*** CRASH: CPU exception ");
    console_put_dec(v);
    console_puts(" ");
    console_puts(trap_names[v]);
    put_reg("\n    rip=", f->rip);
    put_reg(" rsp=", f->rsp);
    put_reg(" error=", f->error);
    put_reg(" rflags=", f->rflags);
    if (v == 14) {
        uint64_t cr2 = boot.mode == BOOT_MODE_PV && boot.shared_info
                           ? boot.shared_info->vcpu_info[0].arch.cr2
                           : read_cr2();
        put_reg(" cr2=", cr2);
    }
    put_reg("\n    rax=", f->rax);
    put_reg(" rbx=", f->rbx);
    put_reg(" rcx=", f->rcx);
    put_reg(" rdx=", f->rdx);
    put_reg("\n    rsi=", f->rsi);
    put_reg(" rdi=", f->rdi);
    put_reg(" rbp=", f->rbp);
    console_puts("\n*** exit code ");
    console_put_dec(RT_EXIT_TRAP_BASE + v);
    console_puts("\n");
    rt_exit(RT_EXIT_TRAP_BASE + (int)v);
}
