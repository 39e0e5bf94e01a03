/* Absolute symbols for cx_reloc.c's aarch64 MOVW tests.  They live in an
   object of their own: the assembler resolves relocations against absolute
   symbols defined in the same file, so only this way do the relocations
   (MOVW_UABS_G0, _G2, MOVW_SABS_G0, ABS16 against SHN_ABS) reach the linker. */
.globl cx_abs_small
.set cx_abs_small, 0x1234
.globl cx_abs_big
.set cx_abs_big, 0x123456789abc
.globl cx_abs_neg
.set cx_abs_neg, -2
.section .note.GNU-stack,"",%progbits
