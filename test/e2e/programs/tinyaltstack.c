/* A program that sets an alternate signal stack of 2 KB (MINSIGSTKSZ of
 * old), too small for a signal's frame on this kind of CPU, then computes:
 * a handler asking for the alternate stack (SA_ONSTACK) could not run.
 * Prints the work's sum. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "work.h"

volatile uint64_t work_sink;

int main(void)
{
    stack_t stack = {.ss_sp = malloc(2048), .ss_size = 2048, .ss_flags = 0};
    if (!stack.ss_sp || sigaltstack(&stack, NULL) != 0) {
        perror("sigaltstack");
        return 1;
    }
    WORK_LOOP(50000, 1);
    printf("%llu\n", (unsigned long long)(work_sink != 0));
    return 0;
}
