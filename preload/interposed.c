/* The libc functions libsprof.so interposes, all in one place. Each calls
 * the real function and adds only what profiling needs. NOT
 * async-signal-safe. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <link.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "module_list.h"
#include "profiler.h"
#include "sample_handler.h"
#include "signals.h"

/* The real functions, resolved once at start-up: _exit and execve are
 * async-signal-safe and programs call them from signal handlers, where
 * dlsym may not run. Found by index: libunwind calls syscall() in every
 * sample, and a search by name cost a tenth of sprof's own part of it. */
enum real_id {
    REAL_DLOPEN, REAL_DLCLOSE, REAL_EXECVE, REAL_EXECV, REAL_EXECVP, REAL_EXECVPE,
    REAL_FEXECVE, REAL_EXECVEAT, REAL_EXIT, REAL_EXIT_UPPER, REAL_PRCTL, REAL_SYSCALL,
    REAL_LIBC_EXIT, REAL_DL_ITERATE_PHDR, REAL_POSIX_SPAWN, REAL_POSIX_SPAWNP, REAL_SYSTEM,
    REAL_COUNT
};
static const char *const real_names[REAL_COUNT] = {
    [REAL_DLOPEN] = "dlopen",     [REAL_DLCLOSE] = "dlclose",   [REAL_EXECVE] = "execve",
    [REAL_EXECV] = "execv",       [REAL_EXECVP] = "execvp",     [REAL_EXECVPE] = "execvpe",
    [REAL_FEXECVE] = "fexecve",   [REAL_EXECVEAT] = "execveat", [REAL_EXIT] = "_exit",
    [REAL_EXIT_UPPER] = "_Exit",  [REAL_PRCTL] = "prctl",       [REAL_SYSCALL] = "syscall",
    [REAL_LIBC_EXIT] = "exit",     [REAL_DL_ITERATE_PHDR] = "dl_iterate_phdr",
    [REAL_POSIX_SPAWN] = "posix_spawn", [REAL_POSIX_SPAWNP] = "posix_spawnp",
    [REAL_SYSTEM] = "system",
};
static void *real_pointers[REAL_COUNT];

void sprof_interposed_init(void)
{
    for (size_t i = 0; i < REAL_COUNT; i++)
        real_pointers[i] = dlsym(RTLD_NEXT, real_names[i]);
}

static void *real_function(enum real_id id)
{
    if (real_pointers[id])
        return real_pointers[id];
    return dlsym(RTLD_NEXT, real_names[id]); /* before start-up only */
}

/* Every thread is sampled from its first instruction, with no call from
 * the program. */
SPROF_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*start)(void *), void *arg)
{
    struct sprof_start_info *info = NULL;
    if (atomic_load(&sprof.active))
        info = malloc(sizeof *info);
    if (!info)
        return sprof_real_pthread_create(thread, attr, start, arg);
    info->start = start;
    info->arg = arg;
    info->sampling_blocked = sprof_signals_sampling_blocked_in_view();
    int error = sprof_real_pthread_create(thread, attr, sprof_start_sampled_thread, info);
    if (error)
        free(info);
    return error;
}

typedef void *(*dlopen_fn)(const char *, int);


void *sprof_real_dlopen(const char *file, int mode)
{
    dlopen_fn fn = (dlopen_fn)real_function(REAL_DLOPEN);
    return fn ? fn(file, mode) : NULL;
}

/* Loaded objects are recorded at once, so their functions can be named
 * even after a dlclose or a kill. */
SPROF_EXPORT void *dlopen(const char *file, int mode)
{
    dlopen_fn fn = (dlopen_fn)real_function(REAL_DLOPEN);
    if (!fn)
        return NULL;
    /* No sample inside the loader's locks: libunwind would call into the
     * loader from the handler and could hang there. */
    sigset_t old;
    sprof_signals_hold_sampling(&old);
    void *handle = fn(file, mode);
    sprof_signals_release_sampling(&old);
    if (handle) {
        sprof_trace_update_modules();
        sprof_sampler_note_unsafe_code();
    }
    return handle;
}

typedef int (*phdr_callback)(struct dl_phdr_info *, size_t, void *);

/* A sample inside the loader's lock (the program's call, or sprof's own
 * outside a sample) keeps its address alone: libunwind would call in
 * again from the handler, and a thread interrupted while taking or giving
 * back the lock then waited on itself for ever (CI, stress-nomalloc).
 * Inside a sample the caller is libunwind, with the signal blocked. */
SPROF_EXPORT int dl_iterate_phdr(phdr_callback callback, void *data)
{
    int (*fn)(phdr_callback, void *) =
        (int (*)(phdr_callback, void *))real_function(REAL_DL_ITERATE_PHDR);
    if (!fn)
        return 0;
    if (sprof_signals_in_unwind_window())
        return fn(callback, data);
    sprof_sampler_loader_enter();
    int result = fn(callback, data);
    sprof_sampler_loader_leave();
    return result;
}

SPROF_EXPORT int dlclose(void *handle)
{
    int (*fn)(void *) = (int (*)(void *))real_function(REAL_DLCLOSE);
    if (!fn)
        return -1;
    struct sprof_object_spans before;
    sprof_object_spans_take(&before);
    sigset_t old;
    sprof_signals_hold_sampling(&old);
    int result = fn(handle);
    sprof_signals_release_sampling(&old);
    sprof_object_spans_reserve_unmapped(&before);
    return result;
}

/* exec: a sampling signal still pending when the new program starts would
 * kill it (the new image has no handler yet), so the timers are stopped and
 * the samples written out first; if exec fails, sampling resumes. */
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);


#define CALL_REAL(type, id, ...)                               \
    do {                                                       \
        type fn_ = (type)real_function(id);                    \
        if (!fn_) {                                            \
            errno = ENOSYS;                                    \
            return -1;                                         \
        }                                                      \
        /* A vfork child shares our memory but not our timers. */ \
        bool own_ = sprof_in_profiled_process();               \
        if (own_)                                              \
            sprof_trace_before_exec();                         \
        struct sprof_exec_signals signals_;                    \
        sprof_signals_before_exec(&signals_);                  \
        int result_ = fn_(__VA_ARGS__);                        \
        int error_ = errno;                                    \
        sprof_signals_after_failed_exec(&signals_);            \
        if (own_)                                              \
            sprof_trace_after_failed_exec();                   \
        errno = error_;                                        \
        return result_;                                        \
    } while (0)

SPROF_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    CALL_REAL(execve_fn, REAL_EXECVE, path, argv, envp);
}

SPROF_EXPORT int execv(const char *path, char *const argv[])
{
    CALL_REAL(execv_fn, REAL_EXECV, path, argv);
}

SPROF_EXPORT int execvp(const char *file, char *const argv[])
{
    CALL_REAL(execv_fn, REAL_EXECVP, file, argv);
}

SPROF_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    CALL_REAL(execve_fn, REAL_EXECVPE, file, argv, envp);
}

SPROF_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    CALL_REAL(fexecve_fn, REAL_FEXECVE, fd, argv, envp);
}

SPROF_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                          int flags)
{
    CALL_REAL(execveat_fn, REAL_EXECVEAT, dirfd, path, argv, envp, flags);
}

/* posix_spawn's child starts the new image as exec would: with the mask
 * the program set and the sampling signal ignored if the program ignores
 * it (glibc's child resets sprof's handler to SIG_DFL). Meanwhile this
 * thread's samples wait, and other threads' samples are dropped while the
 * signal is ignored. system() and popen() spawn inside glibc: they are
 * wrapped the same way (popen in fd_budget.c); for system() that lasts
 * until the command ends. */
typedef int (*posix_spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                              const posix_spawnattr_t *, char *const[], char *const[]);

static int spawn(enum real_id id, pid_t *pid, const char *path,
                 const posix_spawn_file_actions_t *actions, const posix_spawnattr_t *attributes,
                 char *const argv[], char *const envp[])
{
    posix_spawn_fn fn = (posix_spawn_fn)real_function(id);
    if (!fn)
        return ENOSYS;
    struct sprof_exec_signals signals;
    sprof_signals_before_exec(&signals);
    int result = fn(pid, path, actions, attributes, argv, envp);
    sprof_signals_after_failed_exec(&signals);
    return result;
}

SPROF_EXPORT int posix_spawn(pid_t *pid, const char *path,
                             const posix_spawn_file_actions_t *actions,
                             const posix_spawnattr_t *attributes, char *const argv[],
                             char *const envp[])
{
    return spawn(REAL_POSIX_SPAWN, pid, path, actions, attributes, argv, envp);
}

SPROF_EXPORT int system(const char *command)
{
    int (*fn)(const char *) = (int (*)(const char *))real_function(REAL_SYSTEM);
    if (!fn)
        return -1;
    if (!command)
        return fn(command);
    struct sprof_exec_signals signals;
    sprof_signals_before_exec(&signals);
    int result = fn(command);
    sprof_signals_after_failed_exec(&signals);
    return result;
}

SPROF_EXPORT int posix_spawnp(pid_t *pid, const char *file,
                              const posix_spawn_file_actions_t *actions,
                              const posix_spawnattr_t *attributes, char *const argv[],
                              char *const envp[])
{
    return spawn(REAL_POSIX_SPAWNP, pid, file, actions, attributes, argv, envp);
}

/* execl, execlp, execle: collect the arguments, then go through the
 * interposed execve/execvp above. */
static char **collect_arguments(const char *first, va_list *args, char ***envp)
{
    size_t count = 1, capacity = 16;
    char **argv = malloc(capacity * sizeof *argv);
    if (!argv)
        return NULL;
    argv[0] = (char *)first;
    for (;;) {
        char *next = first ? va_arg(*args, char *) : NULL;
        if (count == capacity) {
            char **bigger = realloc(argv, 2 * capacity * sizeof *argv);
            if (!bigger) {
                free(argv);
                return NULL;
            }
            argv = bigger;
            capacity *= 2;
        }
        argv[count++] = next;
        if (!next)
            break;
    }
    if (envp)
        *envp = va_arg(*args, char **);
    return argv;
}

/* Runs an exec of argv (search: through PATH) and frees argv. */
static int exec_collected(const char *path, char **argv, char **envp, bool search)
{
    if (!argv) {
        errno = ENOMEM;
        return -1;
    }
    int result = search ? execvp(path, argv) : execve(path, argv, envp);
    int error = errno;
    free(argv);
    errno = error;
    return result;
}

SPROF_EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list args;
    va_start(args, arg);
    char **argv = collect_arguments(arg, &args, NULL);
    va_end(args);
    return exec_collected(path, argv, environ, false);
}

SPROF_EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list args;
    va_start(args, arg);
    char **argv = collect_arguments(arg, &args, NULL);
    va_end(args);
    return exec_collected(file, argv, NULL, true);
}

SPROF_EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list args;
    va_start(args, arg);
    char **envp = NULL;
    char **argv = collect_arguments(arg, &args, &envp);
    va_end(args);
    return exec_collected(path, argv, envp, false);
}

typedef void (*exit_fn)(int);

/* exit from a second thread while the first is ending the trace would end
 * the process in the middle of it: it waits for the first (at most 5 s). */
SPROF_EXPORT void exit(int status)
{
    sprof_before_exit();
    exit_fn fn = (exit_fn)real_function(REAL_LIBC_EXIT);
    if (fn)
        fn(status);
    for (;;)
        ;
}

/* _exit and _Exit skip destructors: write the samples out first. Programs
 * call them from signal handlers and in vfork children, so this path is
 * async-signal-safe and does nothing in a vfork child. */
SPROF_EXPORT void _exit(int status)
{
    sprof_stop(true);
    exit_fn fn = (exit_fn)real_function(REAL_EXIT);
    if (fn)
        fn(status);
    for (;;)
        ;
}

SPROF_EXPORT void _Exit(int status)
{
    sprof_stop(true);
    exit_fn fn = (exit_fn)real_function(REAL_EXIT_UPPER);
    if (fn)
        fn(status);
    for (;;)
        ;
}

/* seccomp: a sandbox may forbid the system calls sprof makes in its signal
 * handler and at exit (a strict one allows only read, write and exit), and
 * the kernel kills a process that makes one. sprof ends its trace just
 * before, and the program runs on unprofiled. Caught through prctl and
 * syscall(SYS_seccomp), as libseccomp calls it; a raw system call is not. */
__attribute__((no_sanitize_address)) SPROF_EXPORT int prctl(int option, ...)
{
    va_list args;
    va_start(args, option);
    unsigned long a2 = va_arg(args, unsigned long), a3 = va_arg(args, unsigned long);
    unsigned long a4 = va_arg(args, unsigned long), a5 = va_arg(args, unsigned long);
    va_end(args);
    if (option == PR_SET_SECCOMP)
        sprof_stop_before_sandbox(a2 == SECCOMP_MODE_STRICT ? "strict" : "filter");
    int (*real)(int, ...) = (int (*)(int, ...))real_function(REAL_PRCTL);
    return real(option, a2, a3, a4, a5);
}

/* Reads six arguments whatever the call passed, as glibc's syscall does:
 * the sixth is the caller's stack slot, which AddressSanitizer would flag. */
__attribute__((no_sanitize_address)) SPROF_EXPORT long syscall(long number, ...)
{
    va_list args;
    va_start(args, number);
    long a1 = va_arg(args, long), a2 = va_arg(args, long), a3 = va_arg(args, long);
    long a4 = va_arg(args, long), a5 = va_arg(args, long), a6 = va_arg(args, long);
    va_end(args);
    if (number == SYS_seccomp && (a1 == SECCOMP_SET_MODE_STRICT || a1 == SECCOMP_SET_MODE_FILTER))
        sprof_stop_before_sandbox(a1 == SECCOMP_SET_MODE_STRICT ? "strict" : "filter");
    long (*real)(long, ...) = (long (*)(long, ...))real_function(REAL_SYSCALL);
    return real(number, a1, a2, a3, a4, a5, a6);
}
