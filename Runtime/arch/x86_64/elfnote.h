/* elfnote.h: assembler macro emitting one "Xen" ELF note into .note.Xen. */
#ifndef X86_64_ELFNOTE_H
#define X86_64_ELFNOTE_H

#define XEN_ELFNOTE(type, desc)                 \
        .pushsection .note.Xen, "a", @note;     \
        .balign 4;                              \
        .long 2f - 1f;      /* name size */     \
        .long 4f - 3f;      /* desc size */     \
        .long type;                             \
1:      .asciz "Xen";                           \
2:      .balign 4;                              \
3:      desc;                                   \
4:      .balign 4;                              \
        .popsection

#endif
