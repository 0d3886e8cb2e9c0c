/* The program's descriptor budget: a program near its RLIMIT_NOFILE never
 * gets EMFILE because of sprof. The libc calls that make descriptors are
 * interposed; when one fails with EMFILE while sprof holds descriptors it
 * can do without (each thread's perf_event counter, the trace's), sprof
 * gives them back and the call is made once more. Threads are then sampled
 * with CPU-time timers, and the trace is opened for each write.
 *
 * libunwind's memory-validation pipe is given back too: libunwind keeps
 * its numbers in its own array, which sprof learns when libunwind makes
 * the pipe inside the unwinding window; fd_guard.c sets them to -1 there
 * and closes the pipe once no thread is unwinding with it. libunwind opens
 * a new one when it next needs it, if the program has left room; until
 * then it treats the addresses it would have checked as unreadable (only
 * its frame-pointer fallback checks them). Calls made inside the window are
 * sprof's own and give nothing back.
 *
 * glibc's stdio, dirent and temporary-file functions open descriptors
 * through libc-internal calls that no interposed open sees, so they are
 * interposed themselves. Not covered: descriptors received with recvmsg
 * (SCM_RIGHTS: the retry would lose the message), freopen (the stream is
 * gone when its open fails), raw syscall(), io_uring, and libc functions
 * that open files internally and are not listed here (getpwnam and the
 * like, which fail the same way without sprof once its descriptors are
 * given back by any other call).
 *
 * One race is left open: with SPROF_KERNEL=1 (counter-weighted samples) a
 * thread's handler reads its counter, and if another thread gives that
 * counter back in the microseconds between the handler's check and its
 * read, and the program opens a file at the freed number at once, the read
 * takes 8 bytes from that file. Default settings never read the counter.
 *
 * Every descriptor the wrappers return is also checked against the
 * numbers of sprof's counters: one given to the program means that counter's
 * descriptor was closed behind sprof's back, and its thread gets a new one.
 *
 * The wrappers may be called from signal handlers (open, pipe, dup, fcntl,
 * socket and accept are async-signal-safe): the fast path is one call
 * through a pointer, and the giving back takes no lock it waits for and
 * allocates nothing. NOT otherwise special. */
/* Both names of each function are defined here, so neither may be
 * renamed to the other by the headers. */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"
#include "sampling_timer.h"
#include "signals.h"

_Atomic uint64_t sprof_fd_pressure_ns;

bool sprof_fd_budget_give_back(void)
{
    if (!atomic_load(&sprof.active) || !sprof_in_profiled_process())
        return false;
    int released = sprof_timers_give_back_descriptors(sprof.period_ns,
                                                      sprof.settings.signal_number);
    if (sprof_trace_release_fd())
        released++;
    released += sprof_fd_guard_give_back_unwinder_pipe();
    if (released > 0) {
        uint64_t never = 0;
        atomic_compare_exchange_strong(&sprof_fd_pressure_ns, &never,
                                       sprof_monotonic_ns() - sprof.start_monotonic_ns + 1);
    }
    return released > 0;
}

/* Declared by glibc only under _FORTIFY_SOURCE, which programs may use. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* Each interposed function's real one, resolved at start-up (dlsym may not
 * run in a signal handler), or on first use before that. */
#define REAL_FUNCTIONS(X)                                                                      \
    X(open) X(open64) X(openat) X(openat64) X(creat) X(creat64) X(__open_2) X(__open64_2)    \
    X(__openat_2) X(__openat64_2) X(socket) X(socketpair) X(accept) X(accept4) X(pipe)       \
    X(pipe2) X(dup) X(fcntl) X(fcntl64) X(epoll_create) X(epoll_create1) X(eventfd)           \
    X(signalfd) X(timerfd_create) X(inotify_init) X(inotify_init1) X(memfd_create) X(fopen)  \
    X(fopen64) X(opendir) X(tmpfile) X(tmpfile64) X(mkstemp) X(mkstemp64) X(mkostemp)        \
    X(mkostemp64) X(popen) X(posix_openpt)

#define DECLARE_REAL(name)                                                                     \
    static __typeof__(name) *real_##name;                                                      \
    static __typeof__(name) *resolve_##name(void)                                              \
    {                                                                                          \
        real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                             \
        return real_##name;                                                                    \
    }
REAL_FUNCTIONS(DECLARE_REAL)

#define RESOLVE_STATEMENT(name) resolve_##name();

void sprof_fd_budget_init(void)
{
    REAL_FUNCTIONS(RESOLVE_STATEMENT)
}

#define REAL(name) (real_##name ? real_##name : resolve_##name())

/* A descriptor the program was just given: if it has the number of one of
 * sprof's counters, the program closed that behind sprof's back. */
static void note_taken(int fd)
{
    if (fd >= 0 && atomic_load(&sprof.active))
        sprof_timers_number_taken(fd, sprof.period_ns, sprof.plan.kernel_sampled,
                                  sprof.settings.signal_number);
}

/* Makes the call; if it failed with EMFILE and sprof could give some of its
 * descriptors back, makes it once more. Then notes what it gave. */
#define CALL_WITH_BUDGET(type, failed, call, note)                                             \
    do {                                                                                       \
        type result_ = call;                                                                   \
        if (failed && errno == EMFILE && !sprof_signals_in_unwind_window() &&                  \
            sprof_fd_budget_give_back())                                                       \
            result_ = call;                                                                    \
        if (!(failed)) {                                                                       \
            int saved_errno_ = errno;                                                          \
            note;                                                                              \
            errno = saved_errno_;                                                              \
        }                                                                                      \
        return result_;                                                                        \
    } while (0)
#define FD_CALL(call) CALL_WITH_BUDGET(int, result_ < 0, call, note_taken(result_))
#define PAIR_CALL(call, fds)                                                                   \
    CALL_WITH_BUDGET(int, result_ < 0, call, (note_taken(fds[0]), note_taken(fds[1])))
#define STREAM_CALL(call) CALL_WITH_BUDGET(FILE *, result_ == NULL, call, note_taken(fileno(result_)))
#define DIR_CALL(call) CALL_WITH_BUDGET(DIR *, result_ == NULL, call, note_taken(dirfd(result_)))

static mode_t mode_argument(int flags, va_list arguments)
{
    return __OPEN_NEEDS_MODE(flags) ? va_arg(arguments, mode_t) : 0;
}

SPROF_EXPORT int open(const char *path, int flags, ...)
{
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    FD_CALL(REAL(open)(path, flags, mode));
}

SPROF_EXPORT int open64(const char *path, int flags, ...)
{
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    FD_CALL(REAL(open64)(path, flags, mode));
}

SPROF_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    FD_CALL(REAL(openat)(dirfd, path, flags, mode));
}

SPROF_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list arguments;
    va_start(arguments, flags);
    mode_t mode = mode_argument(flags, arguments);
    va_end(arguments);
    FD_CALL(REAL(openat64)(dirfd, path, flags, mode));
}

SPROF_EXPORT int creat(const char *path, mode_t mode)
{
    FD_CALL(REAL(creat)(path, mode));
}

SPROF_EXPORT int creat64(const char *path, mode_t mode)
{
    FD_CALL(REAL(creat64)(path, mode));
}

SPROF_EXPORT int __open_2(const char *path, int flags)
{
    FD_CALL(REAL(__open_2)(path, flags));
}

SPROF_EXPORT int __open64_2(const char *path, int flags)
{
    FD_CALL(REAL(__open64_2)(path, flags));
}

SPROF_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    FD_CALL(REAL(__openat_2)(dirfd, path, flags));
}

SPROF_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    FD_CALL(REAL(__openat64_2)(dirfd, path, flags));
}

SPROF_EXPORT int socket(int domain, int type, int protocol)
{
    FD_CALL(REAL(socket)(domain, type, protocol));
}

SPROF_EXPORT int socketpair(int domain, int type, int protocol, int fds[2])
{
    PAIR_CALL(REAL(socketpair)(domain, type, protocol, fds), fds);
}

/* Linux takes the new descriptor before the connection: an accept that
 * fails with EMFILE leaves the connection queued for the retry. */
SPROF_EXPORT int accept(int fd, struct sockaddr *address, socklen_t *length)
{
    FD_CALL(REAL(accept)(fd, address, length));
}

SPROF_EXPORT int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags)
{
    FD_CALL(REAL(accept4)(fd, address, length, flags));
}

/* Inside the unwinding window, the pipe is libunwind's: numbered high like
 * sprof's own descriptors (at 1024, or in the upper half of a limit below
 * 2048, such as the common 1024), so that the program's lowest free numbers
 * stay what they would be without sprof. Under a limit below 64 it stays
 * where it is: there the upper half is where programs put descriptors they
 * mean to find again (CPython's test_close_fds_when_max_fd_is_lowered, at a
 * limit of 29). */
#define UNWINDER_PIPE_MOVES_AT_LIMIT 64

static int unwinder_pipe_made(int result, int fds[2])
{
    if (result == 0) {
        if (sprof_fd_limit() >= UNWINDER_PIPE_MOVES_AT_LIMIT) {
            fds[0] = sprof_move_fd_high(fds[0], NULL);
            fds[1] = sprof_move_fd_high(fds[1], NULL);
        }
        sprof_fd_guard_note_unwinder_pipe(fds);
    }
    return result;
}

SPROF_EXPORT int pipe(int fds[2])
{
    if (sprof_signals_in_unwind_window())
        return unwinder_pipe_made(REAL(pipe)(fds), fds);
    PAIR_CALL(REAL(pipe)(fds), fds);
}

SPROF_EXPORT int pipe2(int fds[2], int flags)
{
    if (sprof_signals_in_unwind_window())
        return unwinder_pipe_made(REAL(pipe2)(fds, flags), fds);
    PAIR_CALL(REAL(pipe2)(fds, flags), fds);
}

SPROF_EXPORT int dup(int fd)
{
    FD_CALL(REAL(dup)(fd));
}

static bool makes_descriptor(int command)
{
    return command == F_DUPFD || command == F_DUPFD_CLOEXEC;
}

/* fcntl(F_GETFD) probes see sprof's descriptors as closed (fd_guard.c);
 * checked only where the probe found a descriptor open. */
static int flags_unless_hidden(int fd, int flags)
{
    if (flags >= 0 && sprof_fd_guard_hidden(fd)) {
        errno = EBADF;
        return -1;
    }
    return flags;
}

/* The argument is an int or a pointer, as the command says; glibc passes it
 * on as a pointer-sized value, and so do we. */
SPROF_EXPORT int fcntl(int fd, int command, ...)
{
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    if (command == F_GETFD)
        return flags_unless_hidden(fd, REAL(fcntl)(fd, command, argument));
    if (!makes_descriptor(command))
        return REAL(fcntl)(fd, command, argument);
    FD_CALL(REAL(fcntl)(fd, command, argument));
}

SPROF_EXPORT int fcntl64(int fd, int command, ...)
{
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    if (command == F_GETFD)
        return flags_unless_hidden(fd, REAL(fcntl64)(fd, command, argument));
    if (!makes_descriptor(command))
        return REAL(fcntl64)(fd, command, argument);
    FD_CALL(REAL(fcntl64)(fd, command, argument));
}

SPROF_EXPORT int epoll_create(int size)
{
    FD_CALL(REAL(epoll_create)(size));
}

SPROF_EXPORT int epoll_create1(int flags)
{
    FD_CALL(REAL(epoll_create1)(flags));
}

SPROF_EXPORT int eventfd(unsigned int value, int flags)
{
    FD_CALL(REAL(eventfd)(value, flags));
}

SPROF_EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
    /* Never reading the sampling signal (signals.c). */
    sigset_t adjusted;
    mask = sprof_signals_wait_set(mask, &adjusted);
    FD_CALL(REAL(signalfd)(fd, mask, flags));
}

SPROF_EXPORT int timerfd_create(int clock, int flags)
{
    FD_CALL(REAL(timerfd_create)(clock, flags));
}

SPROF_EXPORT int inotify_init(void)
{
    FD_CALL(REAL(inotify_init)());
}

SPROF_EXPORT int inotify_init1(int flags)
{
    FD_CALL(REAL(inotify_init1)(flags));
}

SPROF_EXPORT int memfd_create(const char *name, unsigned int flags)
{
    FD_CALL(REAL(memfd_create)(name, flags));
}

SPROF_EXPORT int mkstemp(char *template)
{
    FD_CALL(REAL(mkstemp)(template));
}

SPROF_EXPORT int mkstemp64(char *template)
{
    FD_CALL(REAL(mkstemp64)(template));
}

SPROF_EXPORT int mkostemp(char *template, int flags)
{
    FD_CALL(REAL(mkostemp)(template, flags));
}

SPROF_EXPORT int mkostemp64(char *template, int flags)
{
    FD_CALL(REAL(mkostemp64)(template, flags));
}

SPROF_EXPORT int posix_openpt(int flags)
{
    FD_CALL(REAL(posix_openpt)(flags));
}

SPROF_EXPORT FILE *fopen(const char *path, const char *mode)
{
    STREAM_CALL(REAL(fopen)(path, mode));
}

SPROF_EXPORT FILE *fopen64(const char *path, const char *mode)
{
    STREAM_CALL(REAL(fopen64)(path, mode));
}

SPROF_EXPORT FILE *tmpfile(void)
{
    STREAM_CALL(REAL(tmpfile)());
}

SPROF_EXPORT FILE *tmpfile64(void)
{
    STREAM_CALL(REAL(tmpfile64)());
}

/* popen's child starts /bin/sh inside glibc, past the interposed exec and
 * posix_spawn: the signal state it inherits is set around the call as
 * for them (signals.h). */
static FILE *popen_with_budget(const char *command, const char *mode)
{
    STREAM_CALL(REAL(popen)(command, mode));
}

SPROF_EXPORT FILE *popen(const char *command, const char *mode)
{
    struct sprof_exec_signals signals;
    sprof_signals_before_exec(&signals);
    FILE *stream = popen_with_budget(command, mode);
    sprof_signals_after_failed_exec(&signals);
    return stream;
}

SPROF_EXPORT DIR *opendir(const char *path)
{
    DIR_CALL(REAL(opendir)(path));
}
