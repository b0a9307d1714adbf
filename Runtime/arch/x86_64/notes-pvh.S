/* notes-pvh.S: the Xen ELF notes of the PVH image (32-bit entry pvh_start32); QEMU -kernel uses the same note. */
#include <xen/elfnote.h>
#include "elfnote.h"

XEN_ELFNOTE(XEN_ELFNOTE_GUEST_OS,       .asciz "XenstoreSwift")
XEN_ELFNOTE(XEN_ELFNOTE_GUEST_VERSION,  .asciz "0.1")
XEN_ELFNOTE(XEN_ELFNOTE_XEN_VERSION,    .asciz "xen-3.0")
XEN_ELFNOTE(XEN_ELFNOTE_LOADER,         .asciz "generic")
XEN_ELFNOTE(XEN_ELFNOTE_PHYS32_ENTRY,   .long pvh_start32)

        .section .note.GNU-stack, "", @progbits
