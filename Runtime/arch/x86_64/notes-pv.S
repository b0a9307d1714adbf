/* notes-pv.S: Xen ELF notes that make the image a 64-bit PV kernel (entry pv_start, hypercall page). */
#include <xen/elfnote.h>
#include "elfnote.h"

XEN_ELFNOTE(XEN_ELFNOTE_GUEST_OS,       .asciz "XenstoreSwift")
XEN_ELFNOTE(XEN_ELFNOTE_GUEST_VERSION,  .asciz "0.1")
XEN_ELFNOTE(XEN_ELFNOTE_XEN_VERSION,    .asciz "xen-3.0")
XEN_ELFNOTE(XEN_ELFNOTE_LOADER,         .asciz "generic")
XEN_ELFNOTE(XEN_ELFNOTE_VIRT_BASE,      .quad 0)
XEN_ELFNOTE(XEN_ELFNOTE_PADDR_OFFSET,   .quad 0)
XEN_ELFNOTE(XEN_ELFNOTE_ENTRY,          .quad pv_start)
XEN_ELFNOTE(XEN_ELFNOTE_HYPERCALL_PAGE, .quad hypercall_page)
XEN_ELFNOTE(XEN_ELFNOTE_FEATURES,       .asciz "!writable_page_tables")

        .section .note.GNU-stack, "", @progbits
