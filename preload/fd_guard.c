/* The program's descriptor calls, kept off sprof's own descriptors: the
 * trace, each thread's perf_event counter, and libunwind's pipe. Daemons
 * close every descriptor, or dup2 over them; sprof's are then left open
 * (close reports success) or moved out of the way first, so sampling and
 * the trace go on and libunwind never writes into a file of the program.
 * Ours are known by what they hold, not just their number: one the program
 * closed with a raw system call may now be a file of its own.
 * close may be called from signal handlers: nothing here allocates or
 * locks. NOT otherwise special. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"
#include "sampling_timer.h"

/* Descriptors libunwind opened during start-up (found by their appearing),
 * and what they are, to tell them from a file of the program's at the same
 * number if one is closed behind our back. */
static int unwinder_fds[4];
static dev_t unwinder_devs[4];
static ino_t unwinder_inos[4];
static _Atomic int unwinder_fd_count;

void sprof_fd_guard_protect(int fd)
{
    int at = atomic_load(&unwinder_fd_count);
    struct stat st;
    if (at < (int)(sizeof unwinder_fds / sizeof unwinder_fds[0]) && fstat(fd, &st) == 0) {
        unwinder_fds[at] = fd;
        unwinder_devs[at] = st.st_dev;
        unwinder_inos[at] = st.st_ino;
        atomic_store(&unwinder_fd_count, at + 1);
    }
}

static bool holds_file(int fd, dev_t dev, ino_t ino)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

int sprof_fd_guard_take_unwinder_fd(void)
{
    for (int i = 0; i < atomic_load(&unwinder_fd_count); i++) {
        int fd = unwinder_fds[i];
        if (fd >= 0) {
            unwinder_fds[i] = -1;
            return fd;
        }
    }
    return -1;
}

/* Where fd is one of ours, a pointer to what holds it (to move it), or for
 * libunwind's (which cannot move) a pointer to a copy. NULL if not ours. */
static _Atomic int *trace_holder(int fd)
{
    return fd >= 0 && atomic_load(&sprof_sampler.trace_fd) == fd &&
                   holds_file(fd, sprof_sampler.trace_dev, sprof_sampler.trace_ino)
               ? &sprof_sampler.trace_fd
               : NULL;
}

static struct sprof_thread *perf_holder(int fd)
{
    if (fd < 0)
        return NULL;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (t->perf_fd != fd)
            continue;
        if (sprof_timer_counter_intact(t))
            return t;
        /* Closed behind our back and reused: the program's file now. */
        sprof_timers_number_taken(fd, sprof.period_ns, sprof.plan.kernel_sampled,
                                  sprof.settings.signal_number);
        return NULL;
    }
    return NULL;
}

static bool is_unwinder_fd(int fd)
{
    for (int i = 0; i < atomic_load(&unwinder_fd_count); i++) {
        if (unwinder_fds[i] == fd)
            return holds_file(fd, unwinder_devs[i], unwinder_inos[i]);
    }
    return false;
}

static bool is_ours(int fd)
{
    return trace_holder(fd) || perf_holder(fd) || is_unwinder_fd(fd);
}

typedef int (*close_range_fn)(unsigned int, unsigned int, int);

/* The real functions, resolved at start-up: close is async-signal-safe and
 * may be called from a handler, where dlsym may not. */
static int (*real_close)(int);
static close_range_fn real_close_range;
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

void sprof_fd_guard_init(void)
{
    real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real_close_range = (close_range_fn)dlsym(RTLD_NEXT, "close_range");
    real_dup2 = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
    real_dup3 = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
}

SPROF_EXPORT int close(int fd)
{
    int (*fn)(int) = real_close;
    if (!fn) {
        /* Called before our constructor (by another library's). */
        errno = 0;
        return (int)syscall(SYS_close, fd);
    }
    if (is_ours(fd))
        return 0; /* left open; the program has no use for the number */
    return fn(fd);
}

/* Closes [first, last] but for ours, with the real close_range on the gaps. */
static int close_range_around_ours(close_range_fn fn, unsigned int first, unsigned int last,
                                   int flags)
{
    unsigned int from = first;
    while (from <= last) {
        /* The lowest of ours in [from, last]. */
        unsigned int ours = UINT_MAX;
        int candidates[8 + 4];
        int count = 0;
        candidates[count++] = atomic_load(&sprof_sampler.trace_fd);
        for (int i = 0; i < atomic_load(&unwinder_fd_count); i++)
            candidates[count++] = unwinder_fds[i];
        for (int i = 0; i < count; i++) {
            if (candidates[i] >= 0 && (unsigned)candidates[i] >= from &&
                (unsigned)candidates[i] <= last && (unsigned)candidates[i] < ours &&
                is_ours(candidates[i]))
                ours = (unsigned)candidates[i];
        }
        for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
            int fd = t->perf_fd;
            if (fd >= 0 && (unsigned)fd >= from && (unsigned)fd <= last && (unsigned)fd < ours &&
                sprof_timer_counter_intact(t))
                ours = (unsigned)fd;
        }
        unsigned int end = ours == UINT_MAX ? last : ours - 1;
        if (ours != from && fn(from, end, flags) != 0)
            return -1;
        if (ours == UINT_MAX || ours == last)
            break;
        from = ours + 1;
    }
    return 0;
}

SPROF_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    close_range_fn fn = real_close_range;
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    /* Marking close-on-exec harms nothing: ours are close-on-exec already. */
    if ((flags & CLOSE_RANGE_CLOEXEC) || first > last)
        return fn(first, last, flags);
    return close_range_around_ours(fn, first, last, flags);
}

SPROF_EXPORT void closefrom(int lowest)
{
    if (lowest < 0)
        lowest = 0;
    if (close_range((unsigned int)lowest, UINT_MAX, 0) == 0)
        return;
    long limit = sysconf(_SC_OPEN_MAX);
    for (long fd = lowest; fd < limit; fd++)
        close((int)fd);
}

/* Before the program puts a descriptor at newfd, moves ours away from it. */
static void make_room(int newfd)
{
    _Atomic int *trace = trace_holder(newfd);
    if (trace) {
        int moved = fcntl(newfd, F_DUPFD_CLOEXEC, newfd + 1);
        if (moved >= 0)
            atomic_store(trace, moved);
        return;
    }
    struct sprof_thread *t = perf_holder(newfd);
    if (t) {
        /* Signals keep carrying the original number (perf_signal_fd). */
        int moved = fcntl(newfd, F_DUPFD_CLOEXEC, newfd + 1);
        if (moved >= 0)
            t->perf_fd = moved;
    }
}

SPROF_EXPORT int dup2(int oldfd, int newfd)
{
    int (*fn)(int, int) = real_dup2;
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    if (oldfd != newfd)
        make_room(newfd);
    return fn(oldfd, newfd);
}

SPROF_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    int (*fn)(int, int, int) = real_dup3;
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    if (oldfd != newfd)
        make_room(newfd);
    return fn(oldfd, newfd, flags);
}
