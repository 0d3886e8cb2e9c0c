/* A function whose unwind rules do not always hold (as hand-written
 * assembly's may not): its loop runs half the time with the frame pointer
 * its rules expect and half the time with 0x1000 there, so an unwinder
 * that learnt the rules at that address reads unmapped memory next time.
 * Usage: badcfi ROUNDS [handler]: prints "done" (or "unsupported" off
 * x86-64). With "handler", the program handles SIGSEGV and SIGBUS itself,
 * as JITs do: a fault that is not its own ends it with status 42; after the
 * loop it makes a fault of its own, from which its handler jumps back
 * ("handled"), and it returns from main. */
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t fault_expected;
static sigjmp_buf after_fault;

static void on_fault(int signal_number, siginfo_t *info, void *context)
{
    (void)info, (void)context;
    static const char stray[] = "a fault not the program's\n";
    if (fault_expected && signal_number == SIGSEGV)
        siglongjmp(after_fault, 1);
    write(1, stray, sizeof stray - 1);
    _exit(42);
}

static void handle_faults(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &action, NULL);
    sigaction(SIGBUS, &action, NULL);
    /* The program reads back what it set. */
    struct sigaction now;
    if (sigaction(SIGSEGV, NULL, &now) != 0 || now.sa_sigaction != on_fault ||
        !(now.sa_flags & SA_SIGINFO)) {
        puts("sigaction reads back another handler");
        exit(3);
    }
}

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
    bool own_handler = argc > 2 && !strcmp(argv[2], "handler");
    if (own_handler)
        handle_faults();
    bad_cfi_spin(rounds);
    puts("done");
    if (own_handler) {
        fault_expected = 1;
        if (sigsetjmp(after_fault, 1) == 0) {
            volatile int *nowhere = (volatile int *)(uintptr_t)atoi("8");
            *nowhere = 1;
        }
        puts("handled");
    }
    return 0;
}
#else
int main(void)
{
    puts("unsupported");
    return 0;
}
#endif
