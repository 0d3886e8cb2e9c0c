/* Coroutines on small stacks of their own (makecontext), as C coroutine
 * libraries make them: four take turns through coroutine_work. A sample
 * landing on one of those stacks must not overflow it: 8 KB leave room
 * for the kernel's signal frame and a short handler, not for unwinding.
 * Usage: coroutines [STACK_BYTES [ROUNDS]]; prints each one's turns. */
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "work.h"

volatile uint64_t work_sink;

#define COROUTINES 4
static ucontext_t main_context, contexts[COROUTINES];
static long turns[COROUTINES];

__attribute__((noinline)) static void coroutine_work(int id)
{
    WORK_LOOP(20, (uint64_t)id);
}

static void coroutine(int id)
{
    for (;;) {
        coroutine_work(id);
        turns[id]++;
        swapcontext(&contexts[id], &main_context);
    }
}

/* Apart from main's loop: getcontext returns twice, as setjmp does. */
__attribute__((noinline)) static int make_coroutine(int i, size_t stack_bytes)
{
    getcontext(&contexts[i]);
    contexts[i].uc_stack.ss_sp = malloc(stack_bytes);
    contexts[i].uc_stack.ss_size = stack_bytes;
    contexts[i].uc_link = &main_context;
    if (!contexts[i].uc_stack.ss_sp)
        return -1;
    makecontext(&contexts[i], (void (*)(void))coroutine, 1, i);
    return 0;
}

int main(int argc, char **argv)
{
    size_t stack_bytes = argc > 1 ? (size_t)atol(argv[1]) : 8192;
    long rounds = argc > 2 ? atol(argv[2]) : 4000;
    for (int i = 0; i < COROUTINES; i++) {
        if (make_coroutine(i, stack_bytes) != 0)
            return 2;
    }
    for (long r = 0; r < rounds * COROUTINES; r++)
        swapcontext(&main_context, &contexts[r % COROUTINES]);
    printf("%ld %ld %ld %ld\n", turns[0], turns[1], turns[2], turns[3]);
    return 0;
}
