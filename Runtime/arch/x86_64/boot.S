/* boot.S: x86_64 entry points — Xen PV (64-bit, start_info) and PVH (32-bit, hvm_start_info) — plus boot stack, page tables, GDT and the hypercall page. */

#define BOOT_STACK_SIZE 0x10000
#define CR0_MP   (1 << 1)
#define CR0_EM   (1 << 2)
#define CR0_PG   (1 << 31)
#define CR4_PAE  (1 << 5)
#define CR4_OSFXSR (1 << 9)
#define CR4_OSXMMEXCPT (1 << 10)
#define MSR_EFER 0xC0000080
#define EFER_LME (1 << 8)
#define PTE_P_RW 0x003
#define PDE_2M   0x083                  /* present | writable | page size */

/* ---------------------------------------------------------------------------------------
 * Xen PV: long mode and paging already on (virtual == physical, VIRT_BASE 0),
 * %rsi = start_info, %rsp = a Xen-provided stack inside the bootstrap mapping.
 */
        .section .text.boot.pv, "ax"
        .code64
        .globl pv_start
pv_start:
        cld
        lea     boot_stack_top(%rip), %rsp
        mov     %rsi, %rdi              /* arg 0: start_info */
        mov     $0, %esi                /* arg 1: BOOT_MODE_PV */
        call    start_kernel
1:      hlt
        jmp     1b

/* ---------------------------------------------------------------------------------------
 * PVH (Xen PVH, or QEMU -kernel with the PHYS32_ENTRY note): 32-bit protected mode,
 * paging off, flat segments, %ebx = hvm_start_info (physical). No stack is provided.
 */
        .section .text.boot.pvh, "ax"
        .code32
        .globl pvh_start32
pvh_start32:
        cli
        cld
        mov     %ebx, %esi              /* keep hvm_start_info across rep stos */

        /* .bss is not guaranteed to be zero (QEMU's loader zero-fills, be safe anyway) */
        mov     $__bss_start, %edi
        mov     $__bss_end, %ecx
        sub     %edi, %ecx
        shr     $2, %ecx
        xor     %eax, %eax
        rep stosl

        /* identity map the first 4 GiB with 2 MiB pages: PML4[0] -> PDPT[0..3] -> 4 PDs */
        mov     $boot_pdpt, %eax
        or      $PTE_P_RW, %eax
        mov     %eax, boot_pml4
        xor     %ecx, %ecx
2:      mov     %ecx, %eax              /* PDPT[i] = PD page i */
        shl     $12, %eax
        add     $boot_pd, %eax
        or      $PTE_P_RW, %eax
        mov     %eax, boot_pdpt(,%ecx,8)
        inc     %ecx
        cmp     $4, %ecx
        jb      2b
        xor     %ecx, %ecx
3:      mov     %ecx, %eax              /* PD entry i maps 2 MiB * i (i < 2048) */
        shl     $21, %eax
        or      $PDE_2M, %eax
        mov     %eax, boot_pd(,%ecx,8)
        mov     %ecx, %eax
        shr     $11, %eax               /* high half of 2 MiB * i */
        mov     %eax, boot_pd+4(,%ecx,8)
        inc     %ecx
        cmp     $2048, %ecx
        jb      3b

        mov     %cr4, %eax              /* PAE for long mode; SSE on, which Swift code uses */
        or      $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
        mov     %eax, %cr4
        mov     $boot_pml4, %eax
        mov     %eax, %cr3
        mov     $MSR_EFER, %ecx
        rdmsr
        or      $EFER_LME, %eax
        wrmsr
        mov     %cr0, %eax
        and     $~CR0_EM, %eax
        or      $(CR0_PG | CR0_MP), %eax
        mov     %eax, %cr0
        lgdt    boot_gdt_desc
        ljmp    $0x08, $pvh_start64

        .code64
pvh_start64:
        mov     $0x10, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        mov     %eax, %fs
        mov     %eax, %gs
        lea     boot_stack_top(%rip), %rsp
        mov     %esi, %edi              /* arg 0: hvm_start_info (zero-extended) */
        mov     $1, %esi                /* arg 1: BOOT_MODE_PVH */
        call    start_kernel
4:      hlt
        jmp     4b

        .section .rodata.boot, "a"
        .balign 16
        .globl boot_gdt
boot_gdt:
        .quad 0
        .quad 0x00af9a000000ffff        /* 0x08: 64-bit ring-0 code */
        .quad 0x00cf92000000ffff        /* 0x10: flat data */
boot_gdt_end:
        .balign 8
boot_gdt_desc:
        .word boot_gdt_end - boot_gdt - 1
        .quad boot_gdt

/* Xen writes hypercall stubs here: at load time (PV) or on the MSR write (PVH). */
        .section .text.hypercall_page, "ax"
        .balign 4096
        .globl hypercall_page
hypercall_page:
        .fill 4096, 1, 0xcc

/*
 * The stack grows down towards a guard page that traps.c unmaps (PVH: a 4 KiB page table for its
 * 2 MiB; PV: update_va_mapping), so an overflow faults instead of rewriting the page tables that
 * used to lie right below it (the entry for the console page was 72 bytes below the stack's end).
 */
        .section .bss.boot, "aw", @nobits
        .balign 4096
        .globl boot_pml4, boot_pdpt, boot_pd, boot_stack_guard, boot_stack, boot_stack_top
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
boot_stack_guard: .skip 4096
boot_stack: .skip BOOT_STACK_SIZE
boot_stack_top:

        .section .note.GNU-stack, "", @progbits
