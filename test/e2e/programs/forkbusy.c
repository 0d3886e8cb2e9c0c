/* Forks while other threads are being sampled: a child must not inherit a
 * lock that another thread's unwind held at the fork (libunwind's, the
 * loader's).
 * Usage: forkbusy FORKS: two threads keep starting short threads that work
 * 40 calls deep while the main thread forks FORKS children one after another; each child works in a new
 * thread and in its main thread (so that it takes samples) and exits with
 * its number modulo 7. Prints how many children exited as expected. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;
static volatile int stop;

__attribute__((noinline)) static void deep_work(int depth)
{
    if (depth > 0) {
        deep_work(depth - 1);
        work_sink++;
        return;
    }
    WORK_LOOP(100, 3);
}

static void *short_worker(void *arg)
{
    deep_work(40);
    return arg;
}

/* New threads, one after another: each one's first samples unwind with
 * libunwind's cache empty, so they take its locks. */
static void *spinner(void *arg)
{
    while (!stop) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, short_worker, NULL) == 0)
            pthread_join(thread, NULL);
    }
    return arg;
}

static void *child_work(void *arg)
{
    WORK_LOOP(300, 5);
    return arg;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    pthread_t spinners[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&spinners[i], NULL, spinner, NULL);
    int ok = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            pthread_t thread;
            pthread_create(&thread, NULL, child_work, NULL);
            WORK_LOOP(300, 7);
            pthread_join(thread, NULL);
            _exit(i % 7);
        }
        int status;
        if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
            WEXITSTATUS(status) == i % 7)
            ok++;
    }
    stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(spinners[i], NULL);
    printf("children ok %d\n", ok);
    return 0;
}
