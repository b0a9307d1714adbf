/* start.S (arm32): zImage header and entry (r2 = device tree), .bss, VFP/NEON, a 1:1 MMU map with caches and a stack guard page, exception vectors and stacks. */

#define BOOT_STACK_SIZE   0x10000
#define EXC_STACK_SIZE    0x1000
#define MODE_SVC          0x13
#define MODE_ABT          0x17
#define MODE_UND          0x1b
#define MODE_IRQ          0x12
#define PSR_IF            0xc0          /* IRQ and FIQ masked */

/* Short-descriptor 1 MiB sections: AP=11 (read-write), domain 0. */
#define SECT_NORMAL_WB    0x00011c0e    /* TEX=001 C=1 B=1 S=1: normal, write-back write-allocate, shareable */
#define SECT_DEVICE       0x00000c16    /* TEX=000 C=0 B=1 XN: shared device */
/* Short-descriptor 4 KiB small page with the attributes of SECT_NORMAL_WB (AP=11, TEX=001 C=1 B=1 S=1). */
#define PAGE_NORMAL_WB    0x0000047e
#define COARSE_TABLE      0x00000001    /* first-level descriptor of a second-level table, domain 0 */
#define NORMAL_FIRST_MB   0x380         /* 0x38000000: Xen's grant-table and magic pages, then guest RAM */
#define NORMAL_END_MB     0x800         /* up to 0x7fffffff; everything else (QEMU's PL011) is device */

        .syntax unified
        .arm
        .arch   armv7-a
        .fpu    neon

        .section .text.boot, "ax"
        .globl  _start
_start:
        /* Linux zImage header: Xen's zImage loader checks the magic at 0x24 and the load address at
         * 0x28 and copies the file part (up to the address at 0x2c) to 0x40008000, MMU off. */
        .rept   8
        mov     r0, r0
        .endr
        b       reset
        .word   0x016f2818              /* zImage magic */
        .word   _start                  /* absolute load and run address */
        .word   _edata                  /* absolute end of the file part */

reset:
        cpsid   aif
        mov     r4, r2                  /* device tree (physical); 0 under QEMU -kernel ELF */

        /* Loaded elsewhere than linked (QEMU's raw-image path puts a zImage at RAM + 0x10000):
         * copy the file part to its link address and continue there. Only PC-relative code up to
         * `relocated`. The running code must not be overwritten: copying down, the first
         * RELOC_HEAD bytes (this code) go first, then the copy at the link address copies the rest. */
        adr     r0, _start              /* where we run */
        ldr     r1, =_start             /* where we belong */
        subs    r3, r1, r0
        beq     relocated
        ldr     r2, =_edata
        sub     r2, r2, r1              /* bytes to copy (a multiple of 4) */
        blo     copy_down
        add     r0, r0, r2              /* link address above the load address: copy backwards */
        add     r1, r1, r2
1:      ldr     r3, [r0, #-4]!
        str     r3, [r1, #-4]!
        subs    r2, r2, #4
        bne     1b
        b       copied
copy_down:
        mov     r5, #RELOC_HEAD
2:      ldr     r3, [r0], #4
        str     r3, [r1], #4
        subs    r5, r5, #4
        bne     2b
        sub     r2, r2, #RELOC_HEAD
        ldr     pc, =copy_rest          /* absolute: the copy just made */
copy_rest:
3:      ldr     r3, [r0], #4
        str     r3, [r1], #4
        subs    r2, r2, #4
        bne     3b
copied:
        mov     r0, #0
        mcr     p15, 0, r0, c7, c5, 0   /* ICIALLU: the new copy is code */
        dsb
        isb
        ldr     pc, =relocated          /* absolute: into the copy */
        .ltorg
        .set    RELOC_HEAD, . - _start  /* the header, this code and its literals */
relocated:
        ldr     sp, =boot_stack_top

        /* A device tree inside .bss would be wiped below: forget it (the loader put it too low). */
        ldr     r0, =__bss_start
        ldr     r1, =__bss_end
        cmp     r4, r0
        blo     1f
        cmp     r4, r1
        movlo   r4, #0
1:      mov     r2, #0                  /* zero .bss: the loader copies only the file part */
2:      cmp     r0, r1
        strlo   r2, [r0], #4
        blo     2b

        /* VFP/NEON on: Swift's armv7 code uses VFPv3/NEON instructions (soft-float calling convention) */
        mrc     p15, 0, r0, c1, c0, 2
        orr     r0, r0, #(0xf << 20)    /* CPACR: cp10 and cp11 full access */
        mcr     p15, 0, r0, c1, c0, 2
        isb
        mov     r0, #0x40000000         /* FPEXC.EN */
        vmsr    fpexc, r0

        /* Exception vectors and one small stack per exception mode */
        ldr     r0, =exception_vectors
        mcr     p15, 0, r0, c12, c0, 0  /* VBAR */
        cps     #MODE_UND
        ldr     sp, =und_stack_top
        cps     #MODE_ABT
        ldr     sp, =abt_stack_top
        cps     #MODE_IRQ
        ldr     sp, =irq_stack_top
        cps     #MODE_SVC

        /* 1:1 section map, then MMU, caches and branch prediction on. With the MMU off every data
         * access is strongly ordered: LLVM's unaligned loads and Swift's LDREX/STREX refcounting
         * need normal memory. Unaligned access stays allowed (SCTLR.A = 0). */
        ldr     r0, =boot_ttb
        mov     r1, #0
3:      mov     r2, r1, lsl #20
        cmp     r1, #NORMAL_FIRST_MB
        blo     4f
        cmp     r1, #NORMAL_END_MB
        bhs     4f
        ldr     r3, =SECT_NORMAL_WB
        b       5f
4:      ldr     r3, =SECT_DEVICE
5:      orr     r2, r2, r3
        str     r2, [r0, r1, lsl #2]
        add     r1, r1, #1
        cmp     r1, #4096
        blo     3b

        /* The MiB holding the stack's guard page is mapped by 4 KiB pages, the guard page left
         * out: a stack overflow is a data abort (reported as such, exit 98), not a silent write
         * into whatever lies below the stack. */
        ldr     r5, =stack_guard
        mov     r6, r5, lsr #20         /* the guard page's MiB */
        ldr     r7, =guard_l2
        ldr     r3, =PAGE_NORMAL_WB
        mov     r1, #0
8:      mov     r2, r6, lsl #20
        orr     r2, r2, r1, lsl #12     /* the page's (1:1) address */
        cmp     r2, r5
        orrne   r2, r2, r3
        moveq   r2, #0                  /* the guard page: translation fault */
        str     r2, [r7, r1, lsl #2]
        add     r1, r1, #1
        cmp     r1, #256
        blo     8b
        orr     r2, r7, #COARSE_TABLE
        str     r2, [r0, r6, lsl #2]
        dsb
        mov     r1, #0
        mcr     p15, 0, r1, c2, c0, 2   /* TTBCR = 0: TTBR0 translates everything */
        orr     r0, r0, #0x4a           /* TTBR0: table walks inner/outer write-back, shareable */
        mcr     p15, 0, r0, c2, c0, 0
        mov     r1, #1
        mcr     p15, 0, r1, c3, c0, 0   /* DACR: domain 0 = client (permissions checked) */
        mov     r1, #0
        mcr     p15, 0, r1, c8, c7, 0   /* TLBIALL */
        mcr     p15, 0, r1, c7, c5, 0   /* ICIALLU */
        dsb
        isb
        mrc     p15, 0, r1, c1, c0, 0
        bic     r1, r1, #(1 << 1)       /* A: no alignment faults */
        bic     r1, r1, #(1 << 28)      /* TRE off: TEX/C/B as written */
        bic     r1, r1, #(1 << 29)      /* AFE off */
        orr     r1, r1, #(1 << 0)       /* M: MMU */
        orr     r1, r1, #(1 << 2)       /* C: data cache */
        orr     r1, r1, #(1 << 11)      /* Z: branch prediction */
        orr     r1, r1, #(1 << 12)      /* I: instruction cache */
        mcr     p15, 0, r1, c1, c0, 0
        isb

        mov     r0, r4                  /* arg 0: device tree */
        mov     r1, #2                  /* arg 1: BOOT_MODE_ARM */
        bl      start_kernel
6:      wfi
        b       6b
        .ltorg

/* ---------------------------------------------------------------------------------------
 * Exception vectors: every exception is fatal. The stub saves r0-r12 and the faulting pc,
 * then calls trap_report(frame, vector) in SVC mode's view of the registers.
 */
        .section .text.vectors, "ax"
        .balign 32
exception_vectors:
        b       vec_reset
        b       vec_undef
        b       vec_svc
        b       vec_pabt
        b       vec_dabt
        b       vec_unused
        b       vec_irq
        b       vec_fiq

.macro VECTOR name, index, lr_adjust
\name:
        sub     lr, lr, #\lr_adjust
        push    {r0-r12, lr}            /* struct trap_frame: r[0..12], pc */
        mov     r0, sp
        mov     r1, #\index
        bl      trap_report
7:      wfi
        b       7b
.endm
        VECTOR  vec_reset, 0, 0
        VECTOR  vec_undef, 1, 4         /* lr = faulting instruction + 4 (ARM state) */
        VECTOR  vec_svc,   2, 4
        VECTOR  vec_pabt,  3, 4
        VECTOR  vec_dabt,  4, 8
        VECTOR  vec_unused,5, 0
        VECTOR  vec_irq,   6, 4
        VECTOR  vec_fiq,   7, 4

        .section .bss.boot, "aw", %nobits
        .balign 16384
boot_ttb:       .skip 16384             /* 4096 section descriptors */
guard_l2:       .skip 1024              /* 256 page descriptors for the guard page's MiB (1 KiB aligned) */
        .balign 4096
        .globl stack_guard                      /* unmapped; traps.c names a fault here */
stack_guard:    .skip 4096
        .globl boot_stack, boot_stack_top       /* main.c measures the stack's use */
boot_stack:     .skip BOOT_STACK_SIZE
boot_stack_top:
und_stack:      .skip EXC_STACK_SIZE
und_stack_top:
abt_stack:      .skip EXC_STACK_SIZE
abt_stack_top:
irq_stack:      .skip EXC_STACK_SIZE
irq_stack_top:

        .section .note.GNU-stack, "", %progbits
