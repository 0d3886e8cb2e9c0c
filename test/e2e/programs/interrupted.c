/* Blocking system calls while the program also computes: counts how many
 * of them a signal cut short (EINTR, or a pipe write that returned early).
 * Prints "interrupted: N" and the breakdown; without a profiler N is 0.
 * Usage: interrupted [ROUNDS] */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "work.h"

#define CHUNK (1 << 20)

volatile uint64_t work_sink;
static volatile int done;
static char chunk[CHUNK];

static void *compute(void *unused)
{
    (void)unused;
    while (!done)
        WORK_LOOP(10, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    pid_t reader = fork();
    if (reader == 0) {
        /* A slow reader: the writer blocks on a full pipe most of the time. */
        close(fds[1]);
        char buffer[65536];
        struct timespec pause = {0, 200000};
        while (read(fds[0], buffer, sizeof buffer) > 0)
            nanosleep(&pause, NULL);
        _exit(0);
    }
    close(fds[0]);
    pthread_t thread;
    pthread_create(&thread, NULL, compute, NULL);
    sem_t never;
    sem_init(&never, 0, 0);
    int short_writes = 0, eintr_write = 0, eintr_sleep = 0, eintr_poll = 0, eintr_select = 0,
        eintr_sem = 0;
    for (int r = 0; r < rounds; r++) {
        ssize_t n = write(fds[1], chunk, CHUNK);
        if (n < 0 && errno == EINTR)
            eintr_write++;
        else if (n >= 0 && n < CHUNK)
            short_writes++;
        for (int i = 0; i < 5; i++) {
            WORK_LOOP(100, 2); /* due for a sample */
            struct timespec pause = {0, 500000};
            if (nanosleep(&pause, NULL) != 0 && errno == EINTR)
                eintr_sleep++;
            if (poll(NULL, 0, 1) < 0 && errno == EINTR)
                eintr_poll++;
            struct timeval tv = {0, 500};
            if (select(0, NULL, NULL, NULL, &tv) < 0 && errno == EINTR)
                eintr_select++;
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += 500000;
            if (deadline.tv_nsec >= 1000000000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000;
            }
            if (sem_timedwait(&never, &deadline) != 0 && errno == EINTR)
                eintr_sem++;
        }
    }
    done = 1;
    pthread_join(thread, NULL);
    close(fds[1]);
    waitpid(reader, NULL, 0);
    int total = short_writes + eintr_write + eintr_sleep + eintr_poll + eintr_select + eintr_sem;
    printf("interrupted: %d (short writes %d, write %d, nanosleep %d, poll %d, select %d, "
           "sem_timedwait %d)\n",
           total, short_writes, eintr_write, eintr_sleep, eintr_poll, eintr_select, eintr_sem);
    return 0;
}
