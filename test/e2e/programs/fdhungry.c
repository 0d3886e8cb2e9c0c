/* A program that uses its whole descriptor budget: with four threads
 * working (each sampled through a descriptor of the profiler's, where
 * perf_event is used), it makes descriptors with one libc call until that
 * fails, closes them all, and works on. Prints how many it got and why it
 * stopped; the count must not depend on the profiler but for what the
 * profiler documents it keeps.
 * Usage: fdhungry KIND [SOFT_LIMIT]   (KIND: see make_descriptors) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "work.h"

#define WORKERS 4
#define MAX_HELD 4096

volatile uint64_t work_sink;
static pthread_barrier_t started, opened;

__attribute__((noinline)) static void before_emfile(void)
{
    WORK_LOOP(10000, 1);
}

__attribute__((noinline)) static void after_emfile(void)
{
    WORK_LOOP(15000, 2);
}

static void *worker(void *unused)
{
    (void)unused;
    before_emfile();
    pthread_barrier_wait(&started);
    pthread_barrier_wait(&opened);
    after_emfile();
    return NULL;
}

/* What was made, to be closed: descriptors, streams or directories. */
static int fds[MAX_HELD];
static FILE *streams[MAX_HELD];
static DIR *dirs[MAX_HELD];
static int held_fds, held_streams, held_dirs;

/* Makes descriptors of one kind until the call fails. Returns how many it
 * made, and the errno it failed with in *error. */
static int make_descriptors(const char *kind, int *error)
{
    int made = 0;
    int pair[2];
    for (;;) {
        if (held_fds + 2 > MAX_HELD || held_streams >= MAX_HELD || held_dirs >= MAX_HELD) {
            *error = 0;
            return made;
        }
        int fd = -1, second = -1;
        FILE *stream = NULL;
        DIR *dir = NULL;
        bool stream_kind = false, dir_kind = false;
        if (!strcmp(kind, "open"))
            fd = open("/dev/null", O_RDONLY);
        else if (!strcmp(kind, "openat"))
            fd = openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
        else if (!strcmp(kind, "creat"))
            fd = creat("/dev/null", 0600);
        else if (!strcmp(kind, "dup"))
            fd = dup(STDIN_FILENO);
        else if (!strcmp(kind, "fcntl"))
            fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        else if (!strcmp(kind, "socket"))
            fd = socket(AF_UNIX, SOCK_STREAM, 0);
        else if (!strcmp(kind, "socketpair") && socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0)
            fd = pair[0], second = pair[1];
        else if (!strcmp(kind, "pipe") && pipe(pair) == 0)
            fd = pair[0], second = pair[1];
        else if (!strcmp(kind, "pipe2") && pipe2(pair, O_CLOEXEC) == 0)
            fd = pair[0], second = pair[1];
        else if (!strcmp(kind, "epoll"))
            fd = epoll_create1(0);
        else if (!strcmp(kind, "eventfd"))
            fd = eventfd(0, 0);
        else if (!strcmp(kind, "timerfd"))
            fd = timerfd_create(CLOCK_MONOTONIC, 0);
        else if (!strcmp(kind, "inotify"))
            fd = inotify_init1(0);
        else if (!strcmp(kind, "memfd"))
            fd = memfd_create("fdhungry", 0);
        else if (!strcmp(kind, "signalfd")) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGUSR1);
            fd = signalfd(-1, &set, 0);
        } else if (!strcmp(kind, "fopen")) {
            stream_kind = true;
            stream = fopen("/dev/null", "r");
        } else if (!strcmp(kind, "tmpfile")) {
            stream_kind = true;
            stream = tmpfile();
        } else if (!strcmp(kind, "opendir")) {
            dir_kind = true;
            dir = opendir("/");
        } else if (strcmp(kind, "socketpair") && strcmp(kind, "pipe") && strcmp(kind, "pipe2")) {
            fprintf(stderr, "fdhungry: unknown kind %s\n", kind);
            exit(2);
        }
        bool failed = stream_kind ? !stream : dir_kind ? !dir : fd < 0;
        if (failed) {
            *error = errno;
            return made;
        }
        if (stream)
            streams[held_streams++] = stream, made++;
        else if (dir)
            dirs[held_dirs++] = dir, made++;
        else {
            fds[held_fds++] = fd, made++;
            if (second >= 0)
                fds[held_fds++] = second, made++;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = argc > 2 ? (rlim_t)atoi(argv[2]) : 64;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        perror("fdhungry: setrlimit");
        return 2;
    }
    pthread_barrier_init(&started, NULL, WORKERS + 1);
    pthread_barrier_init(&opened, NULL, WORKERS + 1);
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0)
            return 1;
    }
    before_emfile();
    pthread_barrier_wait(&started);
    int error;
    int made = make_descriptors(argv[1], &error);
    for (int i = 0; i < held_fds; i++)
        close(fds[i]);
    for (int i = 0; i < held_streams; i++)
        fclose(streams[i]);
    for (int i = 0; i < held_dirs; i++)
        closedir(dirs[i]);
    pthread_barrier_wait(&opened);
    after_emfile();
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    printf("%s: %d descriptors, then %s\n", argv[1], made,
           error == EMFILE ? "EMFILE" : strerror(error));
    return error == EMFILE ? 0 : 1;
}
