/* traps.c: installs CPU exception handlers (IDT with IST stacks for PVH/native, trap table for Xen PV), the stack guard page, and reports a crash on the console. */
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

/* The 64-bit task-state segment: only its interrupt stack table (IST) is used. */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];                        /* ist[n - 1] is the stack of IST index n */
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

/*
 * Known-good stacks for reporting (PVH and native; a PV guest has no IST): no exception handler
 * runs on the stack that faulted, so a stack overflow, or a corrupt stack pointer, is still
 * reported. The double fault, NMI and machine check get stacks of their own, so a fault while
 * another is being reported (on the first stack) cannot destroy them.
 */
enum { IST_FAULT = 1, IST_DOUBLE_FAULT = 2, IST_NMI = 3, IST_MACHINE_CHECK = 4, NR_IST_STACKS = 4 };
#define IST_STACK_SIZE 8192

static uint8_t ist_stacks[NR_IST_STACKS][IST_STACK_SIZE] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));

/* The runtime's GDT (boot.S's has no TSS): null, 64-bit code 0x08, data 0x10, the TSS at 0x18. */
#define TSS_SELECTOR 0x18
static uint64_t gdt[5] __attribute__((aligned(16))) = { 0, 0x00af9a000000ffffull, 0x00cf92000000ffffull, 0, 0 };

static struct idt_gate idt[NR_EXCEPTIONS] __attribute__((aligned(16)));
static struct trap_info pv_trap_table[NR_EXCEPTIONS + 1];
static int in_trap;

/* boot.S: the page directories of the identity map, the unmapped page below the stack, the stack. */
extern uint64_t boot_pd[4 * 512];
extern char boot_stack_guard[], boot_stack[], boot_stack_top[];

static const char *const trap_names[NR_EXCEPTIONS] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode (Swift trap)", "#NM device not available", "#DF double fault",
    "coprocessor overrun", "#TS invalid TSS", "#NP segment not present", "#SS stack fault",
    "#GP general protection", "#PF page fault", "reserved", "#MF x87 error", "#AC alignment check",
    "#MC machine check", "#XM SIMD error", "#VE virtualization", "#CP control protection",
    "reserved", "reserved", "reserved", "reserved", "reserved", "reserved", "#HV injection",
    "#VC VMM communication", "#SX security", "reserved",
};

static unsigned ist_index(int vector)
{
    switch (vector) {
    case 2: return IST_NMI;
    case 8: return IST_DOUBLE_FAULT;
    case 18: return IST_MACHINE_CHECK;
    default: return IST_FAULT;
    }
}

/* Loads the runtime GDT with the TSS whose IST holds the report stacks. */
static void init_tss(void)
{
    for (int n = 0; n < NR_IST_STACKS; n++)
        tss.ist[n] = (uint64_t)(uintptr_t)(ist_stacks[n] + IST_STACK_SIZE);
    tss.iomap_base = sizeof(tss); /* no I/O permission bitmap */
    uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;
    gdt[3] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 /* present, 64-bit TSS */
             | ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
    gdt[4] = base >> 32;
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) desc = { sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt };
    /* same selectors, same descriptors: the segment registers need no reload */
    __asm__ volatile("lgdt %0" :: "m"(desc) : "memory");
    __asm__ volatile("ltr %w0" :: "r"(TSS_SELECTOR));
}

static void init_idt(void)
{
    init_tss();
    for (int v = 0; v < NR_EXCEPTIONS; v++) {
        uint64_t handler = trap_entry_table[v];
        idt[v] = (struct idt_gate){
            .offset_low = (uint16_t)handler,
            .selector = 0x08,              /* 64-bit code */
            .ist = (uint8_t)ist_index(v),
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

#define PTE_PRESENT_WRITABLE 0x003ull
#define PAGE_TABLE_ENTRIES 512

/* 4 KiB page tables replacing the 2 MiB mappings of the guard page and of page 0. */
static uint64_t split_tables[2][PAGE_TABLE_ENTRIES] __attribute__((aligned(PAGE_SIZE)));

/* PVH: maps the 2 MiB around `hole` with 4 KiB pages, all present but `hole`'s (and page 0's). */
static void unmap_page_pvh(uintptr_t hole, uint64_t *table)
{
    uintptr_t region = hole >> 21;
    if ((boot_pd[region] & 0x80) == 0)
        table = (uint64_t *)(uintptr_t)(boot_pd[region] & ~0xfffull); /* already split */
    else
        for (uintptr_t i = 0; i < PAGE_TABLE_ENTRIES; i++)
            table[i] = ((region << 21) + (i << PAGE_SHIFT)) | PTE_PRESENT_WRITABLE;
    table[(hole >> PAGE_SHIFT) & (PAGE_TABLE_ENTRIES - 1)] = 0;
    boot_pd[region] = (uint64_t)(uintptr_t)table | PTE_PRESENT_WRITABLE;
    __asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
}

/*
 * Unmaps the stack's guard page and page 0, so that a stack overflow and a null-pointer access
 * fault (and are reported) instead of silently writing what lies there.
 */
static void unmap_guard_pages(void)
{
    if (boot.mode == BOOT_MODE_PV) {
        HYPERVISOR_update_va_mapping((unsigned long)boot_stack_guard, 0, UVMF_INVLPG);
        HYPERVISOR_update_va_mapping(0, 0, UVMF_INVLPG);
    } else {
        unmap_page_pvh((uintptr_t)boot_stack_guard, split_tables[0]);
        unmap_page_pvh(0, split_tables[1]);
    }
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

/*
 * What the CPU needs to deliver an exception on PVH (IDT, GDT, TSS, the page tables) is checked
 * against a fingerprint taken after boot, around the operations that change the guest-physical
 * map (grant map/unmap, repopulation) and other hypercalls that write into our memory: a change
 * is reported with where it was noticed, instead of surfacing later as a triple fault (issue 15).
 * Bits the CPU itself sets are masked: accessed/dirty in page-table entries, accessed and TSS-busy
 * in descriptors.
 */
extern uint64_t boot_pml4[512], boot_pdpt[512];

static uint64_t fingerprint_words(const uint64_t *w, size_t n, uint64_t mask)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (w[i] & mask)) * 0x100000001b3ull;
    return h;
}

enum { FP_IDT, FP_GDT, FP_TSS, FP_PML4, FP_PDPT, FP_PD, FP_SPLIT, NR_FINGERPRINTS };
static const char *const fingerprint_names[NR_FINGERPRINTS] = {
    "IDT", "GDT", "TSS", "PML4", "PDPT", "page directories", "split page tables",
};
static uint64_t fingerprints[NR_FINGERPRINTS];
static int fingerprints_taken;

static void take_fingerprints(uint64_t out[NR_FINGERPRINTS])
{
    const uint64_t pte = ~0x60ull;                  /* accessed, dirty */
    const uint64_t descriptor = ~(3ull << 40);      /* accessed / TSS busy */
    out[FP_IDT] = fingerprint_words((const uint64_t *)(const void *)idt, sizeof(idt) / 8, ~0ull);
    out[FP_GDT] = fingerprint_words(gdt, 5, descriptor);
    out[FP_TSS] = fingerprint_words((const uint64_t *)(const void *)&tss, sizeof(tss) / 8, ~0ull);
    out[FP_PML4] = fingerprint_words(boot_pml4, 512, pte);
    out[FP_PDPT] = fingerprint_words(boot_pdpt, 512, pte);
    out[FP_PD] = fingerprint_words(boot_pd, 4 * 512, pte);
    out[FP_SPLIT] = fingerprint_words(&split_tables[0][0], 2 * PAGE_TABLE_ENTRIES, pte);
}

int rt_check_cpu_structures(const char *where)
{
    if (!fingerprints_taken)
        return 0;
    uint64_t now[NR_FINGERPRINTS];
    take_fingerprints(now);
    int changed = 0;
    for (int i = 0; i < NR_FINGERPRINTS; i++) {
        if (now[i] == fingerprints[i])
            continue;
        console_puts("*** INTEGRITY: the ");
        console_puts(fingerprint_names[i]);
        console_puts(" changed, noticed ");
        console_puts(where);
        console_puts("\n");
        fingerprints[i] = now[i]; /* report each change once */
        changed = 1;
    }
    return changed;
}

void init_traps(void)
{
    if (boot.mode == BOOT_MODE_PV)
        init_pv_trap_table();
    else
        init_idt();
    unmap_guard_pages();
    if (boot.mode != BOOT_MODE_PV) {
        take_fingerprints(fingerprints);
        fingerprints_taken = 1;
    }
}

static void put_reg(const char *name, uint64_t v)
{
    console_puts(name);
    console_put_hex(v);
}

static uint64_t fault_address(void)
{
    return boot.mode == BOOT_MODE_PV && boot.shared_info ? boot.shared_info->vcpu_info[0].arch.cr2 : read_cr2();
}

static int in_guard_page(uint64_t address)
{
    return address >= (uintptr_t)boot_stack_guard && address < (uintptr_t)boot_stack;
}

/* A frame pointer worth following: on the boot stack, aligned, with room for the saved pair. */
static int frame_on_stack(uint64_t rbp)
{
    return rbp >= (uintptr_t)boot_stack && rbp + 16 <= (uintptr_t)boot_stack_top && (rbp & 7) == 0;
}

#define BACKTRACE_FRAMES 12

/* The faulting rip, then return addresses found by following saved frame pointers (rbp chain). */
static void put_backtrace(const struct trap_frame *f)
{
    console_puts("\n    backtrace: ");
    console_put_hex(f->rip);
    uint64_t rbp = f->rbp;
    for (int n = 0; n < BACKTRACE_FRAMES && frame_on_stack(rbp); n++) {
        const uint64_t *frame = (const uint64_t *)(uintptr_t)rbp;
        console_puts(" ");
        console_put_hex(frame[1]);
        if (frame[0] <= rbp)
            break; /* frames only go up the stack */
        rbp = frame[0];
    }
}

/*
 * Called from traps.S with interrupts off, on an IST stack (PVH) or the faulting stack (PV);
 * prints the crash (vector, all registers, cr2, a backtrace) and exits: RT_EXIT_STACK_OVERFLOW
 * when the fault is in the guard page below the stack, else RT_EXIT_TRAP_BASE + vector.
 */
void trap_report(const struct trap_frame *f) __attribute__((noreturn));
void trap_report(const struct trap_frame *f)
{
    unsigned v = (unsigned)(f->vector & 31);
    uint64_t cr2 = fault_address();
    int overflow = (v == 14 && in_guard_page(cr2)) || in_guard_page(f->rsp);
    int code = overflow ? RT_EXIT_STACK_OVERFLOW : RT_EXIT_TRAP_BASE + (int)v;
    int depth = in_trap++;
    if (depth >= 2)
        arch_exit(code); /* faulting while exiting: no console any more */
    if (depth == 1) {
        console_puts("\n*** CRASH: another CPU exception while reporting one\n");
        rt_exit(code);
    }
    console_puts("\n*** CRASH: CPU exception ");
    console_put_dec(v);
    console_puts(" ");
    console_puts(trap_names[v]);
    if (overflow)
        console_puts(": stack overflow (guard page below the stack)");
    put_reg("\n    rip=", f->rip);
    put_reg(" cs=", f->cs);
    put_reg(" rflags=", f->rflags);
    put_reg(" error=", f->error);
    put_reg("\n    rsp=", f->rsp);
    put_reg(" ss=", f->ss);
    put_reg(" cr2=", cr2);
    put_reg("\n    rax=", f->rax);
    put_reg(" rbx=", f->rbx);
    put_reg(" rcx=", f->rcx);
    put_reg(" rdx=", f->rdx);
    put_reg("\n    rsi=", f->rsi);
    put_reg(" rdi=", f->rdi);
    put_reg(" rbp=", f->rbp);
    put_reg(" r8=", f->r8);
    put_reg("\n    r9=", f->r9);
    put_reg(" r10=", f->r10);
    put_reg(" r11=", f->r11);
    put_reg(" r12=", f->r12);
    put_reg("\n    r13=", f->r13);
    put_reg(" r14=", f->r14);
    put_reg(" r15=", f->r15);
    put_reg("\n    stack=", (uintptr_t)boot_stack);
    put_reg("..", (uintptr_t)boot_stack_top);
    put_backtrace(f);
    console_puts("\n");
    /* NMI, double fault and machine check are not the Swift code's: the machine is suspect */
    if (v != 2 && v != 8 && v != 18)
        rt_crash(code);   /* returns only by restarting in place, when Swift armed it */
    console_puts("*** exit code ");
    console_put_dec((uint64_t)code);
    console_puts("\n");
    rt_exit(code);
}

void arch_restart_traps(void) { in_trap = 0; }
