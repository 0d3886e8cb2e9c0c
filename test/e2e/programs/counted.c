/* Built with -finstrument-functions: call counts known by construction.
 *   fib(22), naive: 57313 calls, 1 primitive.
 *   memo_fib(n): 2n - 1 calls for n >= 1.
 *   leaf: 3 calls from caller_a, 5 from caller_b per round; caller_a's
 *     calls do 5 times the work, so caller_a has 15/18 = 83.3% of leaf's
 *     time and caller_b 16.7%; main calls only caller_a, caller_b, fib,
 *     memo_fib, descend, jumped_over (and pthread_create, setjmp, printf).
 *   descend: a recursion 10000 deep, once: 10000 calls, 1 primitive.
 *   a thread that leaves through pthread_exit from nested calls: 1 call of
 *     thread_outer and of thread_inner.
 *   jumped_over: 3 deep, left by longjmp (its exit hooks never run), then
 *     3 deep again, returning: 6 calls, 2 primitive.
 *   in_handler: called by a SIGALRM handler every 200 us of a busy loop of
 *     hooked calls (busy_call); the count of handler runs is printed, since
 *     a hook interrupted by the handler cannot count it (sprof reports those
 *     as dropped).
 * Usage: counted [LEAF_ROUNDS [_exit|signals]]: _exit ends the program with
 *   _exit(0) instead of returning from main. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static long fib(int n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static long memo[100];

__attribute__((noinline)) static long memo_fib(int n)
{
    if (n < 2)
        return n;
    if (memo[n])
        return memo[n];
    long value = memo_fib(n - 1) + memo_fib(n - 2);
    memo[n] = value;
    return value;
}

__attribute__((noinline)) static void leaf(int units)
{
    WORK_LOOP(units, 11);
}

__attribute__((noinline)) static void caller_a(int units)
{
    leaf(5 * units);
    work_sink++;
}

__attribute__((noinline)) static void caller_b(int units)
{
    leaf(units);
    work_sink++;
}

__attribute__((noinline)) static long descend(int depth)
{
    long below = depth > 1 ? descend(depth - 1) : 0;
    work_sink++;
    return below + 1;
}

__attribute__((noinline)) static void thread_inner(void)
{
    pthread_exit(NULL);
}

__attribute__((noinline)) static void thread_outer(void)
{
    thread_inner();
    work_sink++;
}

static void *thread_main(void *unused)
{
    (void)unused;
    thread_outer();
    return NULL;
}

static volatile sig_atomic_t handler_runs;

__attribute__((noinline)) static void in_handler(void)
{
    work_sink++;
}

static void on_alarm(int signal_number)
{
    (void)signal_number;
    in_handler();
    handler_runs++;
}

__attribute__((noinline)) static void busy_call(void)
{
    work_sink++;
}

static jmp_buf jump;

__attribute__((noinline)) static void jumped_over(int depth, int jump_out)
{
    if (depth > 1)
        jumped_over(depth - 1, jump_out);
    else if (jump_out)
        longjmp(jump, 1);
    work_sink++;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    printf("fib(22) = %ld\n", fib(22));
    printf("memo_fib(30) = %ld\n", memo_fib(30));
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 3; i++)
            caller_a(100);
        for (int i = 0; i < 5; i++)
            caller_b(60);
    }
    printf("descend = %ld\n", descend(10000));
    pthread_t thread;
    pthread_create(&thread, NULL, thread_main, NULL);
    pthread_join(thread, NULL);
    if (setjmp(jump) == 0)
        jumped_over(3, 1);
    jumped_over(3, 0);
    if (argc > 2 && !strcmp(argv[2], "signals")) {
        signal(SIGALRM, on_alarm);
        struct itimerval every = {{0, 200}, {0, 200}};
        setitimer(ITIMER_REAL, &every, NULL);
        while (handler_runs < 2000)
            busy_call();
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        printf("handler runs %d\n", (int)handler_runs);
    }
    printf("done\n");
    fflush(stdout);
    if (argc > 2 && !strcmp(argv[2], "_exit"))
        _exit(0);
    return 0;
}
