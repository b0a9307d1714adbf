/* traps.S: entry stubs for CPU exceptions 0-31; each builds a struct trap_frame and calls trap_report (never returns). */

/* Native / PVH stub: the CPU pushed ss, rsp, rflags, cs, rip and, for some vectors, an error code. */
.macro TRAP vec, has_error
        .section .text.traps, "ax"
        .balign 16
trap_\vec:
.if \has_error == 0
        pushq   $0
.endif
        pushq   $\vec
        jmp     trap_common
.endm

/* Xen PV stub: Xen additionally pushed rcx and r11 on top of the hardware-style frame. */
.macro PV_TRAP vec
        .section .text.traps, "ax"
        .balign 16
pv_trap_\vec:
        mov     (%rsp), %rcx
        mov     8(%rsp), %r11
        add     $16, %rsp
        jmp     trap_\vec
.endm


.irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
        TRAP \v, 0
        PV_TRAP \v
.endr
.irp v, 8,10,11,12,13,14,17,21,29,30
        TRAP \v, 1
        PV_TRAP \v
.endr

        .section .text.traps, "ax"
trap_common:
        push    %rax
        push    %rbx
        push    %rcx
        push    %rdx
        push    %rsi
        push    %rdi
        push    %rbp
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, %rdi              /* struct trap_frame * */
        and     $-16, %rsp
        call    trap_report
1:      hlt
        jmp     1b

/* Tables of stub addresses, indexed by vector, read by traps.c. */
        .section .rodata.traps, "a"
        .balign 8
        .globl trap_entry_table, pv_trap_entry_table
trap_entry_table:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad trap_\v
.endr
pv_trap_entry_table:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad pv_trap_\v
.endr

        .section .note.GNU-stack, "", @progbits
