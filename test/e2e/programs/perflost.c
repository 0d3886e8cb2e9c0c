/* Closes the profiler's perf_event descriptors behind its back, with raw
 * close and close_range system calls that no interposed libc function
 * sees, while four threads work; then takes two of the freed numbers for
 * files of its own (one through libc, one by a system call) and closes
 * them, and works on. Prints how many it closed
 * and whether its own file really closed; exits 1 if it did not.
 * Usage: perflost */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "work.h"

#define WORKERS 4

volatile uint64_t work_sink;
static pthread_barrier_t started, closed;

__attribute__((noinline)) static void before_close(void)
{
    WORK_LOOP(10000, 1);
}

__attribute__((noinline)) static void after_close(void)
{
    WORK_LOOP(15000, 2);
}

static void *worker(void *unused)
{
    (void)unused;
    before_close();
    pthread_barrier_wait(&started);
    pthread_barrier_wait(&closed);
    after_close();
    return NULL;
}

/* The descriptors that are perf_event counters, from /proc/self/fd. */
static int find_perf_descriptors(int *fds, int max)
{
    int count = 0;
    for (int fd = 3; fd < 4096 && count < max; fd++) {
        char path[64], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (!strcmp(target, "anon_inode:[perf_event]"))
            fds[count++] = fd;
    }
    return count;
}

int main(void)
{
    pthread_barrier_init(&started, NULL, WORKERS + 1);
    pthread_barrier_init(&closed, NULL, WORKERS + 1);
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0)
            return 1;
    }
    before_close();
    pthread_barrier_wait(&started);

    int perf[64];
    int count = find_perf_descriptors(perf, 64);
    for (int i = 0; i < count; i++) {
        if (i % 2 == 0)
            syscall(SYS_close, perf[i]);
        else
            syscall(SYS_close_range, perf[i], perf[i], 0);
    }
    /* Files of ours at freed numbers, taken behind the profiler's back and
     * through libc: closing them must close them. The highest numbers: a
     * counter the profiler re-arms takes the lowest free one of its range. */
    bool own_file_closed = true;
    for (int i = 0; i < count && i < 2; i++) {
        int wanted = perf[count - 1 - i];
        int mine = i == 0 ? (int)syscall(SYS_fcntl, STDIN_FILENO, F_DUPFD, wanted)
                          : fcntl(STDIN_FILENO, F_DUPFD, wanted);
        close(mine);
        own_file_closed = own_file_closed && mine == wanted && fcntl(mine, F_GETFD) == -1 &&
                          errno == EBADF;
    }

    pthread_barrier_wait(&closed);
    after_close();
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    printf("closed %d perf descriptors; own files at freed numbers closed: %s\n", count,
           own_file_closed ? "yes" : "no");
    return own_file_closed ? 0 : 1;
}
