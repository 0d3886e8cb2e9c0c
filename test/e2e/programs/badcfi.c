/* A function whose unwind rules do not always hold (as hand-written
 * assembly's may not): its loop runs half the time with the frame pointer
 * its rules expect and half the time with 0x1000 there, so an unwinder
 * that learnt the rules at that address reads unmapped memory next time.
 * Usage: badcfi ROUNDS: prints "done" (or "unsupported" off x86-64). */
#include <stdio.h>
#include <stdlib.h>

#if defined(__x86_64__)
void bad_cfi_spin(unsigned long rounds);
__asm__(".text\n"
        ".globl bad_cfi_spin\n"
        ".type bad_cfi_spin, @function\n"
        "bad_cfi_spin:\n"
        ".cfi_startproc\n"
        "pushq %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "movq %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "movq %rbp, %r8\n"
        "movq $500, %r9\n" /* first rounds without the wrong half: the rules */
        "2:\n"           /* are learnt while they hold */
        "movq %r8, %rbp\n" /* the true frame pointer: the rules hold */
        "movl $100000, %edx\n"
        "xorl %eax, %eax\n"
        "3:\n"
        "subq $1, %rdx\n"
        "jnz 3b\n"
        "testl %eax, %eax\n"
        "jnz 4f\n"
        "testq %r9, %r9\n"
        "jz 5f\n"
        "subq $1, %r9\n"
        "jmp 4f\n"
        "5:\n"
        "movq $0x1000, %rbp\n" /* the same loop, the rules now wrong */
        "movl $100000, %edx\n"
        "movl $1, %eax\n"
        "jmp 3b\n"
        "4:\n"
        "subq $1, %rdi\n"
        "jnz 2b\n"
        "movq %r8, %rbp\n"
        "popq %rbp\n"
        ".cfi_def_cfa %rsp, 8\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size bad_cfi_spin, .-bad_cfi_spin\n");

int main(int argc, char **argv)
{
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    bad_cfi_spin(rounds);
    puts("done");
    return 0;
}
#else
int main(void)
{
    puts("unsupported");
    return 0;
}
#endif
