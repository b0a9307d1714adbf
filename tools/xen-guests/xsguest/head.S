/* Entry point, Xen ELF notes and hypercall page of xsguest, a tiny x86_64 PV guest linked at VA 0. */
#include <xen/elfnote.h>

#define NOTE(type, desc...)             \
    .pushsection .note.Xen, "a", @note; \
    .balign 4;                          \
    .long 2f - 1f;                      \
    .long 4f - 3f;                      \
    .long type;                         \
1:  .asciz "Xen";                       \
2:  .balign 4;                          \
3:  desc;                               \
4:  .balign 4;                          \
    .popsection

NOTE(XEN_ELFNOTE_GUEST_OS,       .asciz "xsguest")
NOTE(XEN_ELFNOTE_GUEST_VERSION,  .asciz "1")
NOTE(XEN_ELFNOTE_XEN_VERSION,    .asciz "xen-3.0")
NOTE(XEN_ELFNOTE_LOADER,         .asciz "generic")
NOTE(XEN_ELFNOTE_VIRT_BASE,      .quad 0)
NOTE(XEN_ELFNOTE_PADDR_OFFSET,   .quad 0)
NOTE(XEN_ELFNOTE_ENTRY,          .quad _start)
NOTE(XEN_ELFNOTE_HYPERCALL_PAGE, .quad hypercall_page)

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
