/* A thread that is not the main one forks; the child works in two equal
 * halves (first_half, second_half) and ends with exit or _exit, as the
 * argument says. The child's samples must cover its CPU time, both halves
 * alike, and its thread must have its record: the child's one thread was
 * the parent's second, and sprof once forgot it there, losing the samples
 * of its last 100 ms and its record.
 * Usage: forkthread exit|_exit. Prints the child's pid. */
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;
static const char *ending;

__attribute__((noinline)) static void first_half(void)
{
    WORK_LOOP(25000, 1);
}

__attribute__((noinline)) static void second_half(void)
{
    WORK_LOOP(25000, 2);
}

static void *forker(void *arg)
{
    pid_t child = fork();
    if (child == 0) {
        first_half();
        second_half();
        if (strcmp(ending, "_exit") == 0)
            _exit(0);
        exit(0);
    }
    int status = -1;
    waitpid(child, &status, 0);
    printf("%d\n", (int)child);
    return status == 0 ? arg : NULL;
}

int main(int argc, char **argv)
{
    ending = argc > 1 ? argv[1] : "exit";
    static int done;
    pthread_t thread;
    void *result = NULL;
    if (pthread_create(&thread, NULL, forker, &done) != 0 || pthread_join(thread, &result) != 0)
        return 1;
    return result ? 0 : 1;
}
