/* Entry point, Xen ELF notes and hypercall page of xsguest, a tiny x86_64 PV guest linked at VA 0. */
#include <xen/elfnote.h>
#include "../../../Runtime/arch/x86_64/elfnote.h"   /* XEN_ELFNOTE(type, desc), shared with the stub image */

XEN_ELFNOTE(XEN_ELFNOTE_GUEST_OS,       .asciz "xsguest")
XEN_ELFNOTE(XEN_ELFNOTE_GUEST_VERSION,  .asciz "1")
XEN_ELFNOTE(XEN_ELFNOTE_XEN_VERSION,    .asciz "xen-3.0")
XEN_ELFNOTE(XEN_ELFNOTE_LOADER,         .asciz "generic")
XEN_ELFNOTE(XEN_ELFNOTE_VIRT_BASE,      .quad 0)
XEN_ELFNOTE(XEN_ELFNOTE_PADDR_OFFSET,   .quad 0)
XEN_ELFNOTE(XEN_ELFNOTE_ENTRY,          .quad _start)
XEN_ELFNOTE(XEN_ELFNOTE_HYPERCALL_PAGE, .quad hypercall_page)

    .text
    .globl _start
_start:                     /* 64-bit, paging on, %rsi = start_info */
    cld
    leaq    stack_end(%rip), %rsp
    movq    %rsi, %rdi
    call    guest_main
0:  hlt
    jmp     0b

    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc

    .bss
    .balign 4096
    .globl shared_info_page
shared_info_page:           /* remapped onto Xen's shared_info at start */
    .fill 4096, 1, 0
    .balign 16
    .fill 16384, 1, 0
stack_end:
    .section .note.GNU-stack,"",@progbits
