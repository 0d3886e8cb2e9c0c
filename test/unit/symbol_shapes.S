/* Function symbols in the shapes a symbol table can hold, for
 * test_symbolize: sized, sizeless (hand-written assembly often has no
 * .size), two sizeless names at one address, a sized alias of a sizeless
 * one, a function nested inside another, and sizeless ones before code the
 * unwind table gives to no function or to another. */
#if defined(__x86_64__) || defined(__aarch64__)
    .text
    .p2align 6

    .globl shape_sized
    .type shape_sized, @function
shape_sized:
    .fill 48, 1, 0x90
    .size shape_sized, 48

    .globl shape_sizeless
    .type shape_sizeless, @function
shape_sizeless:
    .fill 40, 1, 0x90

    .globl shape_twin_first
    .type shape_twin_first, @function
    .globl shape_twin_second
    .type shape_twin_second, @function
shape_twin_first:
shape_twin_second:
    .fill 24, 1, 0x90

    .globl shape_alias_sizeless
    .type shape_alias_sizeless, @function
    .globl shape_alias_sized
    .type shape_alias_sized, @function
shape_alias_sizeless:
shape_alias_sized:
    .fill 32, 1, 0x90
    .size shape_alias_sized, 16

    .globl shape_outer
    .type shape_outer, @function
shape_outer:
    .fill 16, 1, 0x90
    .globl shape_inner
    .type shape_inner, @function
shape_inner:
    .fill 16, 1, 0x90
    .size shape_inner, 16
    .fill 32, 1, 0x90
    .size shape_outer, 64

    /* A sizeless function with an unwind entry, then code that has
     * neither symbol nor entry (a GHC program's Haskell code after
     * crtstuff's frame_dummy): not the function's. */
    .globl shape_sizeless_cfi
    .type shape_sizeless_cfi, @function
shape_sizeless_cfi:
    .cfi_startproc
    .fill 16, 1, 0x90
    .cfi_endproc
    .fill 16, 1, 0x90

    /* A sizeless function without one, then code with an entry of its own
     * and no symbol (_init, then the PLT): not the function's either. */
    .globl shape_sizeless_bare
    .type shape_sizeless_bare, @function
shape_sizeless_bare:
    .fill 16, 1, 0x90
    .globl shape_unnamed_cfi
shape_unnamed_cfi = .
    .cfi_startproc
    .fill 16, 1, 0x90
    .cfi_endproc

    .globl shape_last_sizeless
    .type shape_last_sizeless, @function
shape_last_sizeless:
    .fill 16, 1, 0x90
    .globl shape_end
    .type shape_end, @function
shape_end:
    .fill 16, 1, 0x90
    .size shape_end, 16
#endif
    .section .note.GNU-stack, "", @progbits
