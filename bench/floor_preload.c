/* floor_preload.so: the floor for sprof's cost, for the benchmark harness.
 *
 * The same timer and signal as sprof (preload/sampling_timer.c): a
 * perf_event task-clock counter per thread (the main thread at start, and
 * every thread made by pthread_create), signalling that thread with SIGPROF
 * through fcntl F_SETSIG / F_SETOWN_EX (F_OWNER_TID), counting user time
 * only unless BENCH_FLOOR_KERNEL=1 (as sprof with SPROF_KERNEL). The
 * handler only counts the signal. Like sprof by default, it keeps its
 * signal unblocked in every thread (see mask_without_floor_signal). What a
 * profiler costs beyond this floor is its own work: unwinding, tables,
 * writing. Like sprof, it stops the calling thread's counter before execve,
 * execv, execvp and execvpe (a signal reaching the new image, which has no
 * handler, would kill it), and re-arms it if the exec fails.
 *
 *   BENCH_FLOOR_FREQ     signals per second of each thread's CPU time (999)
 *   BENCH_FLOOR_KERNEL   1: count kernel time too, where permitted (0)
 *   BENCH_FLOOR_OUTPUT   file to which each process appends, at exit, a line
 *                        "pid signals threads"
 *   BENCH_FLOOR_SIGNAL   how an expiry reaches the thread, to split the
 *                        floor's cost in two (section 1 of the report):
 *                        fasync  SIGPROF through F_SETSIG, as sprof (default);
 *                        none    no signal: the counter's timer alone; the
 *                                line's "signals" are then its expiries
 *                                (count / period, read at the thread's end);
 *                        trap    perf's own SIGTRAP (attr.sigtrap, Linux
 *                                5.13+), sent on the way back to user space
 *                                instead of through an interrupt for fasync;
 *                        itimer  no counter: setitimer(ITIMER_PROF), one
 *                                SIGPROF timer for the process, driven by the
 *                                kernel's tick, as gperftools uses it. The
 *                                program's blocks of SIGPROF then hold, as
 *                                they do under gperftools.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static _Atomic unsigned long signals;
static _Atomic unsigned long threads_armed;
static unsigned long period_ns = 1000000000ul / 999;
static int include_kernel = 0;
static _Atomic int active;
static int main_fd = -1;
static pthread_key_t fd_key;
static enum { SIGNAL_FASYNC, SIGNAL_NONE, SIGNAL_TRAP, SIGNAL_ITIMER } signal_mode = SIGNAL_FASYNC;

static void on_signal(int signal_number, siginfo_t *info, void *context)
{
    (void)signal_number;
    (void)info;
    (void)context;
    atomic_fetch_add_explicit(&signals, 1, memory_order_relaxed);
}

static int open_task_clock(int kernel)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.sample_period = period_ns;
    attr.disabled = 1;
    attr.exclude_kernel = kernel ? 0 : 1;
    attr.exclude_hv = 1;
    attr.wakeup_events = 1;
    if (signal_mode == SIGNAL_TRAP) {
        attr.sigtrap = 1;
        attr.remove_on_exec = 1; /* the kernel requires it with sigtrap */
    }
    return (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* The process's ITIMER_PROF, in itimer mode: on (period_ns) or off. */
static void set_process_timer(bool on)
{
    long period_us = (long)(period_ns / 1000);
    struct itimerval timer = {.it_interval = {0, on ? period_us : 0},
                              .it_value = {0, on ? period_us : 0}};
    setitimer(ITIMER_PROF, &timer, NULL);
}

/* Arms a counter for the calling thread; returns its descriptor or -1. */
static int arm_this_thread(void)
{
    if (signal_mode == SIGNAL_ITIMER)
        return -1;
    int fd = open_task_clock(include_kernel);
    if (fd < 0)
        return -1;
    struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = (pid_t)syscall(SYS_gettid)};
    if ((signal_mode == SIGNAL_FASYNC &&
         (fcntl(fd, F_SETFL, O_ASYNC) != 0 || fcntl(fd, F_SETSIG, SIGPROF) != 0 ||
          fcntl(fd, F_SETOWN_EX, &owner) != 0)) ||
        ioctl(fd, PERF_EVENT_IOC_RESET, 0) != 0 || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0) {
        close(fd);
        return -1;
    }
    atomic_fetch_add(&threads_armed, 1);
    return fd;
}

static void disarm(int fd)
{
    if (fd >= 0) {
        ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
        uint64_t count;
        if (signal_mode == SIGNAL_NONE && read(fd, &count, sizeof count) == sizeof count)
            atomic_fetch_add(&signals, count / period_ns);
        close(fd);
    }
}

static void on_thread_exit(void *value)
{
    disarm((int)(intptr_t)value - 1);
}

/* This thread's counter descriptor + 1 (0: none), for exec. */
static int *this_thread_fd(void)
{
    static __thread int fd_plus_one;
    return &fd_plus_one;
}

struct start_info {
    void *(*start)(void *);
    void *arg;
};

static int floor_signal(void)
{
    return signal_mode == SIGNAL_TRAP ? SIGTRAP : SIGPROF;
}

/* sprof keeps SIGPROF deliverable in threads that block every signal
 * (its virtual masks, SPROF_UNBLOCK=1 by default), and so does the floor,
 * crudely: a block never includes the floor's signal, and a new thread,
 * which may have inherited a full mask (liblzma makes its threads so),
 * unblocks it. Otherwise the floor would deliver nothing to such threads
 * and cost less than the same timer does for sprof. */
typedef int (*mask_fn)(int, const sigset_t *, sigset_t *);

static int mask_without_floor_signal(_Atomic(mask_fn) *real, const char *name, int how,
                                     const sigset_t *set, sigset_t *old)
{
    mask_fn fn = atomic_load(real);
    if (!fn) {
        fn = (mask_fn)dlsym(RTLD_NEXT, name);
        atomic_store(real, fn);
    }
    sigset_t copy;
    if (set && how != SIG_UNBLOCK && signal_mode != SIGNAL_ITIMER &&
        sigismember(set, floor_signal())) {
        copy = *set;
        sigdelset(&copy, floor_signal());
        set = &copy;
    }
    return fn(how, set, old);
}

EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    static _Atomic(mask_fn) real;
    return mask_without_floor_signal(&real, "pthread_sigmask", how, set, old);
}

EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    static _Atomic(mask_fn) real;
    return mask_without_floor_signal(&real, "sigprocmask", how, set, old);
}

static void *start_armed(void *raw)
{
    struct start_info info = *(struct start_info *)raw;
    free(raw);
    sigset_t own_signal;
    sigemptyset(&own_signal);
    sigaddset(&own_signal, floor_signal());
    if (signal_mode != SIGNAL_ITIMER)
        pthread_sigmask(SIG_UNBLOCK, &own_signal, NULL);
    int fd = arm_this_thread();
    if (fd >= 0) {
        *this_thread_fd() = fd + 1;
        pthread_setspecific(fd_key, (void *)(intptr_t)(fd + 1));
    }
    return info.start(info.arg);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *),
                          void *arg)
{
    static _Atomic(pthread_create_fn) real;
    pthread_create_fn fn = atomic_load(&real);
    if (!fn) {
        fn = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        atomic_store(&real, fn);
    }
    struct start_info *info = atomic_load(&active) ? malloc(sizeof *info) : NULL;
    if (!info)
        return fn(thread, attr, start, arg);
    info->start = start;
    info->arg = arg;
    int error = fn(thread, attr, start_armed, info);
    if (error)
        free(info);
    return error;
}

/* exec: release this thread's counter first (closing it delivers any
 * signal it raised, to our handler), then re-arm if exec fails. */

static void before_exec(void)
{
    if (!atomic_load(&active))
        return;
    if (signal_mode == SIGNAL_ITIMER) /* it would reach the new image */
        set_process_timer(false);
    if (main_fd >= 0 && syscall(SYS_gettid) == getpid()) {
        disarm(main_fd);
        main_fd = -1;
    }
    int *own = this_thread_fd();
    if (*own > 0) {
        disarm(*own - 1);
        *own = 0;
        pthread_setspecific(fd_key, NULL);
    }
}

static void after_failed_exec(void)
{
    if (!atomic_load(&active))
        return;
    if (signal_mode == SIGNAL_ITIMER)
        set_process_timer(true);
    int fd = arm_this_thread();
    if (syscall(SYS_gettid) == getpid()) {
        main_fd = fd;
    } else if (fd >= 0) {
        *this_thread_fd() = fd + 1;
        pthread_setspecific(fd_key, (void *)(intptr_t)(fd + 1));
    }
}

#define EXEC_WRAPPER(name, params, args)                                 \
    EXPORT int name params                                               \
    {                                                                    \
        typedef int (*fn_t) params;                                      \
        fn_t fn = (fn_t)dlsym(RTLD_NEXT, #name);                         \
        if (!fn) {                                                       \
            errno = ENOSYS;                                              \
            return -1;                                                   \
        }                                                                \
        before_exec();                                                   \
        int result = fn args;                                            \
        int error = errno;                                               \
        after_failed_exec();                                             \
        errno = error;                                                   \
        return result;                                                   \
    }

EXEC_WRAPPER(execve, (const char *path, char *const argv[], char *const envp[]),
             (path, argv, envp))
EXEC_WRAPPER(execv, (const char *path, char *const argv[]), (path, argv))
EXEC_WRAPPER(execvp, (const char *file, char *const argv[]), (file, argv))
EXEC_WRAPPER(execvpe, (const char *file, char *const argv[], char *const envp[]),
             (file, argv, envp))

static void on_fork_child(void)
{
    /* The inherited descriptor counts the parent's thread: drop it. */
    if (main_fd >= 0)
        close(main_fd);
    atomic_store(&signals, 0);
    atomic_store(&threads_armed, 0);
    main_fd = arm_this_thread();
    if (signal_mode == SIGNAL_ITIMER) /* not inherited */
        set_process_timer(true);
}

__attribute__((constructor)) static void floor_start(void)
{
    const char *freq = getenv("BENCH_FLOOR_FREQ");
    if (freq && atol(freq) > 0)
        period_ns = 1000000000ul / (unsigned long)atol(freq);
    /* Count the kernel only when asked and permitted, as sprof does. */
    const char *kernel = getenv("BENCH_FLOOR_KERNEL");
    if (kernel && atoi(kernel) == 1) {
        int probe = open_task_clock(1);
        include_kernel = probe >= 0;
        if (probe >= 0)
            close(probe);
    }
    const char *mode = getenv("BENCH_FLOOR_SIGNAL");
    if (mode && !strcmp(mode, "none"))
        signal_mode = SIGNAL_NONE;
    else if (mode && !strcmp(mode, "trap"))
        signal_mode = SIGNAL_TRAP;
    else if (mode && !strcmp(mode, "itimer"))
        signal_mode = SIGNAL_ITIMER;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(floor_signal(), &action, NULL);
    pthread_key_create(&fd_key, on_thread_exit);
    pthread_atfork(NULL, NULL, on_fork_child);
    atomic_store(&active, 1);
    main_fd = arm_this_thread();
    if (signal_mode == SIGNAL_ITIMER)
        set_process_timer(true);
}

__attribute__((destructor)) static void floor_end(void)
{
    atomic_store(&active, 0);
    if (signal_mode == SIGNAL_ITIMER)
        set_process_timer(false);
    disarm(main_fd);
    main_fd = -1;
    const char *path = getenv("BENCH_FLOOR_OUTPUT");
    if (!path)
        return;
    char line[96];
    int n = snprintf(line, sizeof line, "%d %lu %lu\n", (int)getpid(), atomic_load(&signals),
                     atomic_load(&threads_armed));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t ignored = write(fd, line, (size_t)n);
        (void)ignored;
        close(fd);
    }
}
