/* A program whose signal handler runs on a small alternate stack (as
 * CPython's faulthandler sets up), with a guard page below it, and computes
 * there for a while: a sampling handler that needs more stack than is left
 * would hit the guard page and crash the program.
 * Usage: altstack [KB] (the alternate stack's size, default 16). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "work.h"


volatile uint64_t work_sink;
static volatile sig_atomic_t handled;

__attribute__((noinline)) static void work_in_handler(void)
{
    for (int i = 0; i < 40; i++)
        WORK_LOOP(500, (uint64_t)i);
}

static void on_usr1(int signal_number)
{
    (void)signal_number;
    work_in_handler();
    handled++;
}

int main(int argc, char **argv)
{
    size_t size = (size_t)(argc > 1 ? atoi(argv[1]) : 16) * 1024;
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *region = mmap(NULL, page + size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED || mprotect(region, page, PROT_NONE) != 0) {
        perror("mmap");
        return 1;
    }
    stack_t alternate = {.ss_sp = region + page, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&alternate, NULL) != 0) {
        perror("sigaltstack");
        return 1;
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr1;
    action.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &action, NULL);
    for (int i = 0; i < 5; i++)
        raise(SIGUSR1);
    printf("altstack: %d handlers ran\n", (int)handled);
    return handled == 5 ? 0 : 1;
}
