/* Entry point, PHYS32_ENTRY note and hypercall page of xsguest built as a 32-bit PVH guest. */
#include <xen/elfnote.h>

    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long _start
    .popsection

    .text
    .code32
    .globl _start
_start:                     /* flat 32-bit protected mode, paging off, %ebx = hvm_start_info */
    cld
    movl    $stack_end, %esp
    pushl   %ebx
    call    guest_main32
0:  hlt
    jmp     0b

    .balign 4096
    .globl hypercall_page
hypercall_page:             /* Xen fills it once its MSR is written */
    .fill 4096, 1, 0xcc

    .bss
    .balign 16
    .fill 16384, 1, 0
stack_end:
    .section .note.GNU-stack,"",@progbits
