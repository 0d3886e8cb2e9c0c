/* Start-up, exit and fork: the life cycle of the profiler in a process.
 * NOT async-signal-safe. */
#include "profiler.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sample_handler.h"
#include "signals.h"
#include "sprof/trace_format.h"
#include "trace_codec.h"

/* Tells the processes a run starts that they are children of it, and where
 * the run's trace is: "<run id>:<first process's pid>:<trace path>". */
#define RUN_VARIABLE "SPROF_RUN"

/* How long a thread's samples may wait in its buffer before being written;
 * bounds what a SIGKILL loses. */
#define SPROF_FLUSH_INTERVAL_NS (100u * 1000u * 1000u)

struct sprof_profiler sprof;

uint64_t sprof_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void note_stderr(void)
{
    struct stat st;
    sprof.stderr_known = sprof_fstat_raw(STDERR_FILENO, &st) == 0;
    sprof.stderr_dev = sprof.stderr_known ? st.st_dev : 0;
    sprof.stderr_ino = sprof.stderr_known ? st.st_ino : 0;
}

/* Whether fd 2 is still the stderr the program started with. */
static bool stderr_unchanged(void)
{
    struct stat st;
    return sprof.stderr_known && sprof_fstat_raw(STDERR_FILENO, &st) == 0 &&
           st.st_dev == sprof.stderr_dev && st.st_ino == sprof.stderr_ino;
}

/* At most one line on the program's stderr, ever. Async-signal-safe: no
 * stdio, so it may run from _exit in a signal handler. */
static void print_line(const char *text)
{
    if (sprof.stderr_line_printed || !sprof.prints_line || !stderr_unchanged())
        return;
    sprof.stderr_line_printed = true;
    /* Static: this may run on a small alternate signal stack. */
    static char line[sizeof sprof_sampler.trace_path + 1400];
    size_t n = 0;
    for (const char *part = "sprof: "; *part && n < sizeof line - 1; part++)
        line[n++] = *part;
    for (; *text && n < sizeof line - 1; text++)
        line[n++] = *text;
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, n);
    (void)ignored;
}

/* Appends a decimal number to text; async-signal-safe, unlike snprintf. */
static size_t append_decimal(char *text, size_t at, size_t size, uint64_t value, int min_digits)
{
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value || count < min_digits);
    while (count > 0 && at < size - 1)
        text[at++] = digits[--count];
    text[at] = '\0';
    return at;
}

static size_t append_text(char *text, size_t at, size_t size, const char *part)
{
    while (*part && at < size - 1)
        text[at++] = *part++;
    text[at] = '\0';
    return at;
}

static uint64_t new_run_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id)
        id = sprof_monotonic_ns() ^ ((uint64_t)getpid() << 32);
    return id ? id : 1;
}

/* Reads SPROF_RUN ("<run id>:<root pid>:<trace path>"), set by the run's
 * first process; false when we are that first process. A negative root pid
 * says the run's one line was already printed, by an image of the first
 * process that then exec'd (line_said, when not NULL). */
static bool inherited_run(uint64_t *run_id, int *root_pid, const char **root_path,
                          bool *line_said)
{
    const char *value = getenv(RUN_VARIABLE);
    if (!value)
        return false;
    char *end;
    errno = 0;
    unsigned long long id = strtoull(value, &end, 16);
    if (errno || end == value || *end != ':')
        return false;
    long pid = strtol(end + 1, &end, 10);
    if (errno || *end != ':' || end[1] != '/' || pid == 0 || pid < -INT_MAX || pid > INT_MAX)
        return false;
    *run_id = id;
    *root_pid = (int)(pid < 0 ? -pid : pid);
    *root_path = end + 1;
    if (line_said)
        *line_said = pid < 0;
    return true;
}

/* A line printed while starting: the images this one execs (the same
 * process, still the first) inherit SPROF_RUN marked, and print none. */
static void print_start_line(const char *text)
{
    bool printed_before = sprof.stderr_line_printed;
    print_line(text);
    uint64_t run_id;
    int root_pid;
    const char *root_path;
    bool said;
    if (printed_before || !sprof.stderr_line_printed ||
        !inherited_run(&run_id, &root_pid, &root_path, &said) || said)
        return;
    char value[4300];
    snprintf(value, sizeof value, "%016" PRIx64 ":-%d:%s", run_id, root_pid, root_path);
    setenv(RUN_VARIABLE, value, 1);
}

/* Whether path holds a trace of this run: an earlier image of this
 * process wrote it before an exec. */
static bool trace_of_this_run(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return false;
    uint8_t header[sizeof(struct sprof_file_header)];
    ssize_t got = read(fd, header, sizeof header);
    close(fd);
    if (got != (ssize_t)sizeof header)
        return false;
    struct sprof_decoder dec;
    sprof_decoder_init(&dec, header, sizeof header);
    const uint8_t *magic = sprof_decoder_bytes(&dec, SPROF_TRACE_MAGIC_SIZE);
    sprof_decoder_u32(&dec); /* version */
    sprof_decoder_u32(&dec); /* header size */
    uint64_t run_id = sprof_decoder_u64(&dec);
    return magic && memcmp(magic, SPROF_TRACE_MAGIC, SPROF_TRACE_MAGIC_SIZE) == 0 &&
           run_id == sprof.run_id;
}

/* A process other than the run's first writes TRACE.<pid>; each image of it
 * after an exec writes TRACE.<pid>.<n>, so that none overwrites another's.
 * A file from another run (the pid reused) is overwritten. */
static void child_trace_path(const char *root_path, char *path, size_t size)
{
    snprintf(path, size, "%.4096s.%d", root_path, (int)getpid());
    for (int image = 2; image < 10000 && trace_of_this_run(path); image++)
        snprintf(path, size, "%.4096s.%d.%d", root_path, (int)getpid(), image);
}

/* The run's first trace, which sprof-analyze reads with all the others. */
static char run_trace_path[4200];

static void on_thread_key_destroyed(void *value)
{
    sprof_thread_end(value);
}

static void on_fork_prepare(void);
static void on_fork_parent(void);
static void on_fork_child(void);

static bool open_trace(const char *path)
{
    int error = sprof_trace_open(path, sprof.settings.warnings);
    if (error) {
        char text[4400];
        snprintf(text, sizeof text, "cannot write trace %s (%s); not profiling", path,
                 strerror(error));
        print_start_line(text);
        return false;
    }
    return true;
}

/* Whether a thread's first unwind may run in the signal handler instead of
 * a warm-up at its start, which costs every thread (most of a thread pool's
 * never get a sample) about 0.1 ms of CPU and 256 KB of memory: libunwind's
 * per-thread cache. Making it takes mmap and libunwind's own locks, which
 * block signals while held, and pthread_setspecific, which allocates
 * (glibc's second-level arrays) for keys from 32 up, never below. libunwind
 * made its key at the latest in the main thread's warm-up, just before this;
 * glibc hands out the lowest free key, so a probe key made now is above it. */
static bool unwinder_key_needs_no_allocation(void)
{
    pthread_key_t probe;
    if (pthread_key_create(&probe, NULL) != 0)
        return false;
    pthread_key_delete(probe);
    return probe < 32;
}

__attribute__((constructor)) static void sprof_start(void)
{
    /* Whether or not we profile, the interposed functions must work. */
    sprof_interposed_init();
    sprof_fd_guard_init();
    sprof_fd_budget_init();
    sprof_signals_init();
    /* Never profile setuid/setgid programs, nor take settings there. */
    if (getauxval(AT_SECURE))
        return;
    uint64_t run_id = 0;
    int root_pid = 0;
    const char *root_path = NULL;
    bool line_said = false;
    bool child = inherited_run(&run_id, &root_pid, &root_path, &line_said);
    /* A first process that exec'd another program is still the first: it
     * prints the run's line (into a trace of its own: trace.bin is taken). */
    sprof.root = !child;
    sprof.prints_line = !child || (root_pid == getpid() && !line_said);
    note_stderr();

    char cwd[4096];
    const char *base = getcwd(cwd, sizeof cwd) ? cwd : NULL;
    sprof_settings_read(&sprof.settings, base);
    if (child && !sprof.settings.children)
        return;
    if (sprof.settings.symbolize)
        sprof_names_library_locate(base);
    sprof.start_monotonic_ns = sprof_monotonic_ns();
    sprof_trace_note_start_usage();
    sprof.pid = getpid();
    sprof.period_ns = 1000000000u / sprof.settings.frequency_hz;
    char path[sizeof sprof_sampler.trace_path];
    if (child) {
        sprof.run_id = run_id;
        child_trace_path(root_path, path, sizeof path);
        snprintf(run_trace_path, sizeof run_trace_path, "%.4096s", root_path);
    } else {
        sprof.run_id = new_run_id();
        snprintf(path, sizeof path, "%s", sprof.settings.output);
        char value[4300];
        snprintf(value, sizeof value, "%016" PRIx64 ":%d:%s", sprof.run_id, (int)getpid(), path);
        setenv(RUN_VARIABLE, value, 1);
    }

    /* ThreadSanitizer holds an asynchronous signal back until the thread
     * reaches a point of its choosing, so a sample would name that point;
     * and it ends a thread before libunwind's per-thread cleanup, which
     * then crashed the program inside ThreadSanitizer. */
    if (dlsym(RTLD_DEFAULT, "__tsan_init")) {
        print_start_line("this program is built with ThreadSanitizer, which delays signals "
                         "and ends threads before libunwind's cleanup; not profiling");
        return;
    }
    if (!sprof_timer_plan_choose(&sprof.plan, sprof.settings.timer, sprof.settings.kernel,
                                 sprof.period_ns,
                                 sprof.settings.signal_number)) {
        char text[400];
        snprintf(text, sizeof text, "%s; not profiling", sprof.plan.notice);
        print_start_line(text);
        return;
    }
    sprof_sampler.signal_number = sprof.settings.signal_number;
    sprof_sampler.timer_kind = sprof.plan.timer_kind;
    sprof_sampler.period_ns = sprof.period_ns;
    sprof_sampler.counter_weights = sprof.plan.kernel_sampled;
    sprof_sampler.max_depth = sprof.settings.max_depth;
    sprof_sampler.flush_interval_ns = SPROF_FLUSH_INTERVAL_NS;
    if (pthread_key_create(&sprof.thread_key, on_thread_key_destroyed) != 0)
        return;
    sprof_signals_init();
    sprof_sampler_note_unsafe_code();
    int error = sprof_sampler_install();
    if (error) {
        char text[256];
        snprintf(text, sizeof text, "cannot install the signal handler (%s); not profiling",
                 strerror(error));
        print_start_line(text);
        return;
    }
    if (!open_trace(path))
        return;
    pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
    atomic_store(&sprof.active, true);
    sprof_signals_guard_fatal();
    if (sprof.settings.unblock)
        sprof_signals_thread_start(false);
    sprof_thread_begin();
    sprof_sampler.threads_start_cold = unwinder_key_needs_no_allocation();

    if (sprof.settings.warnings[0]) {
        /* Said now, while it can still help; this is then the one line. */
        char text[sizeof sprof.settings.warnings + sizeof sprof_sampler.trace_path + 16];
        snprintf(text, sizeof text, "%s; trace: %s", sprof.settings.warnings,
                 sprof_sampler.trace_path);
        print_start_line(text);
    }
}

bool sprof_in_profiled_process(void)
{
    return getpid() == sprof.pid;
}

/* Whether a descriptor can be had: the end of the run needs a few (the
 * trace, and the files it names addresses from). */
static bool descriptor_free(void)
{
    long fd = syscall(SYS_openat, AT_FDCWD, "/", O_PATH | O_CLOEXEC);
    if (fd < 0)
        return false;
    syscall(SYS_close, fd);
    return true;
}

struct descriptor_child_task {
    void (*run)(void);
};

static int descriptor_child_main(void *argument)
{
    /* This copy of the table only: the program's descriptors stay open. */
    int keep = atomic_load(&sprof_sampler.trace_fd);
    if (keep < 3) {
        syscall(SYS_close_range, 3u, ~0u, 0u);
    } else {
        syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u);
        syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u);
    }
    ((struct descriptor_child_task *)argument)->run();
    return 0;
}

/* Runs run() in a child that shares our memory but has its own copy of the
 * descriptor table, with the program's descriptors closed in that copy: the
 * end of a run for a program that holds every descriptor its limit allows
 * (the trace, and libunwind's pipe, were given back to it). The calling
 * thread waits (CLONE_VFORK). The child raises no SIGCHLD, and only a wait
 * with __WALL or __WCLONE sees it. Returns false if it could not start. */
static bool run_with_own_descriptors(void (*run)(void))
{
    enum { CHILD_STACK_BYTES = 8u << 20 };
    void *stack = mmap(NULL, CHILD_STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return false;
    struct descriptor_child_task task = {run};
    int child = clone(descriptor_child_main, (char *)stack + CHILD_STACK_BYTES,
                      CLONE_VM | CLONE_VFORK, &task);
    if (child > 0) {
        while (waitpid(child, NULL, __WCLONE) < 0 && errno == EINTR) {
        }
    }
    munmap(stack, CHILD_STACK_BYTES);
    return child > 0;
}

void sprof_stop_before_sandbox(const char *how)
{
    if (!atomic_load(&sprof.active) || !sprof_in_profiled_process())
        return;
    char text[300];
    uint64_t ms = (sprof_monotonic_ns() - sprof.start_monotonic_ns) / 1000000u;
    snprintf(text, sizeof text,
             "the program entered a seccomp sandbox (%s) %" PRIu64 ".%03" PRIu64
             " s into the run: sprof ended its trace there, since the sandbox may forbid the "
             "system calls sampling makes",
             how, ms / 1000, ms % 1000);
    sprof_trace_add_notice(text);
    sprof_stop(false);
    sprof_signals_unguard_fatal();
}

/* The traces of this run's other processes (and later images) beside the
 * run's own: PATH.<pid>[.<n>] holding this run's id. Normal context only. */
static unsigned count_other_traces(const char *path)
{
    char directory[sizeof sprof_sampler.trace_path];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!slash)
        snprintf(directory, sizeof directory, ".");
    else
        snprintf(directory, sizeof directory, "%.*s", slash == path ? 1 : (int)(slash - path),
                 path);
    DIR *dir = opendir(directory);
    if (!dir)
        return 0;
    size_t base_length = strlen(base);
    unsigned count = 0;
    char other[sizeof sprof_sampler.trace_path + 300];
    for (struct dirent *entry; (entry = readdir(dir));) {
        const char *name = entry->d_name;
        if (strncmp(name, base, base_length) != 0 || name[base_length] != '.' ||
            name[base_length + 1] < '0' || name[base_length + 1] > '9')
            continue;
        snprintf(other, sizeof other, "%s/%s", directory, name);
        count += trace_of_this_run(other);
    }
    closedir(dir);
    return count;
}

static void stop_trace(bool quick);

/* Threads that end the process at once (exit or _exit from two threads):
 * the one ending the trace, the first to call exit, and whether the trace's
 * end is written. The others wait for it, or the kernel would end the
 * process in the middle of writing it (a helper's double_exit: no summary,
 * 3 of 3 runs). */
static _Atomic pid_t stopping_thread, exiting_thread;
static _Atomic bool stop_finished;

#define STOP_WAIT_MS 5000

/* Async-signal-safe. */
static void wait_for_stop(void)
{
    struct timespec nap = {0, 1000000};
    for (int i = 0; i < STOP_WAIT_MS && !atomic_load(&stop_finished); i++)
        nanosleep(&nap, NULL);
}

/* Makes no system call when no other thread is stopping (sandboxes). */
static void wait_for_stop_elsewhere(void)
{
    pid_t stopper = atomic_load(&stopping_thread);
    if (stopper == 0 || atomic_load(&stop_finished) || !sprof_in_profiled_process() ||
        stopper == (pid_t)syscall(SYS_gettid))
        return;
    wait_for_stop();
}

void sprof_before_exit(void)
{
    if (!atomic_load(&sprof.active) && atomic_load(&stopping_thread) == 0)
        return;
    if (atomic_load(&stop_finished) || !sprof_in_profiled_process())
        return;
    pid_t self = (pid_t)syscall(SYS_gettid);
    pid_t owner = 0;
    if (atomic_compare_exchange_strong(&exiting_thread, &owner, self) || owner == self)
        return;
    wait_for_stop();
}

void sprof_stop(bool quick)
{
    /* No system call once stopped: a sandboxed program may forbid them. */
    if (!atomic_load(&sprof.active) || !sprof_in_profiled_process()) {
        wait_for_stop_elsewhere();
        return;
    }
    /* The stopper is named before sprof is marked inactive: a thread that
     * calls exit meanwhile must see a stop under way and wait for it, not
     * take an inactive sprof for one that never ran and end the process
     * in the middle of the trace's end (1 run in 100 of two threads calling
     * exit at once lost the summary). */
    pid_t none = 0;
    if (!atomic_compare_exchange_strong(&stopping_thread, &none, (pid_t)syscall(SYS_gettid))) {
        wait_for_stop_elsewhere();
        return;
    }
    atomic_store(&sprof.active, false);
    stop_trace(quick);
    atomic_store(&stop_finished, true);
}

/* Ends the trace and says the line; sprof_stop lets one caller through. */
static void stop_trace(bool quick)
{
    /* Static: this may run in a signal handler on a small alternate stack;
     * the exchange above lets only one caller through. */
    static char path[sizeof sprof_sampler.trace_path];
    static char text[sizeof path + 200];
    memcpy(path, sprof_sampler.trace_path, sizeof path);
    void (*finish)(void) = quick ? sprof_trace_finish_quick : sprof_trace_finish;
    bool helped = false;
    if (!descriptor_free()) {
        sprof_trace_measure_end();
        helped = run_with_own_descriptors(finish);
    }
    if (!helped)
        finish();
    if (sprof.settings.quiet)
        return;
    uint64_t ms = atomic_load(&sprof_total_weight_ns) / 1000000u;
    size_t n = append_decimal(text, 0, sizeof text, atomic_load(&sprof_total_samples), 1);
    n = append_text(text, n, sizeof text, " samples (");
    n = append_decimal(text, n, sizeof text, ms / 1000, 1);
    n = append_text(text, n, sizeof text, ".");
    n = append_decimal(text, n, sizeof text, ms % 1000, 3);
    n = append_text(text, n, sizeof text, " s of CPU) written to ");
    n = append_text(text, n, sizeof text, path);
    if (!sprof.root && run_trace_path[0]) {
        /* The run's first program exec'd this one: its line names the whole. */
        n = append_text(text, n, sizeof text, " (this program's part: `sprof-analyze ");
        n = append_text(text, n, sizeof text, run_trace_path);
        n = append_text(text, n, sizeof text, "` reads the whole run)");
    } else if (sprof.root && !quick) {
        /* Under a wrapper (time, a shell) the samples are the children's. */
        unsigned others = count_other_traces(path);
        if (others) {
            n = append_text(text, n, sizeof text, ", and ");
            n = append_decimal(text, n, sizeof text, others, 1);
            n = append_text(text, n, sizeof text,
                            others == 1 ? " more trace of this run beside it (`sprof-analyze "
                                        : " more traces of this run beside it (`sprof-analyze ");
            n = append_text(text, n, sizeof text, path);
            n = append_text(text, n, sizeof text, "` reads them all)");
        }
    }
    if (atomic_load(&sprof_write_failures))
        append_text(text, n, sizeof text, " (some writes failed: the trace is incomplete)");
    print_line(text);
}

__attribute__((destructor)) static void sprof_at_exit(void)
{
    sprof_stop(false);
}

static void on_fork_prepare(void)
{
    sprof_trace_before_fork();
    /* Other threads' unwinds end within microseconds; the bound is for a
     * fork made, against all odds, from a fault inside one. */
    atomic_store(&sprof_fork_waiting, true);
    uint64_t deadline = sprof_monotonic_ns() + 100000000u;
    while (atomic_load(&sprof_unwinds_running) > 0 && sprof_monotonic_ns() < deadline)
        sched_yield();
}

static void on_fork_parent(void)
{
    atomic_store(&sprof_fork_waiting, false);
    sprof_trace_after_fork_parent();
}

static void on_fork_child(void)
{
    atomic_store(&stopping_thread, 0);
    atomic_store(&exiting_thread, 0);
    atomic_store(&stop_finished, false);
    atomic_store(&sprof_unwinds_running, 0);
    atomic_store(&sprof_fork_waiting, false);
    sprof_timers_after_fork_child();
    if (!atomic_load(&sprof.active)) {
        sprof_trace_after_fork_parent();
        return;
    }
    /* The inherited perf descriptor is the parent thread's counter: close
     * our copy only (disabling it would stop the parent's sampling). POSIX
     * timers are not inherited at all. */
    struct sprof_thread *self = sprof_current_thread;
    sprof_current_thread = NULL;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        /* Our copies of the parent threads' counters, where they are still
         * theirs. Cleared first: the descriptor guard keeps our own fds
         * open. Their pages are not inherited. */
        int fd = sprof_timer_counter_intact(t) ? t->perf_fd : -1;
        t->perf_fd = -1;
        /* A parent's thread may have been making or closing a counter: the
         * number is no longer ours to hide here. */
        atomic_store(&t->perf_fd_changing, -1);
        t->perf_page = NULL;
        if (fd >= 0)
            close(fd);
    }
    if (self)
        self->has_timer = false;
    /* Passed, not read from sprof_current_thread (cleared above): the
     * child's thread stays active, or its last samples and its record were
     * never written (about the last 100 ms of each forked child's). */
    sprof_trace_after_fork_child(self);
    sprof.pid = getpid();
    sprof.root = false;
    sprof.prints_line = false;
    if (!sprof.settings.children) {
        atomic_store(&sprof.active, false);
        return;
    }
    char path[sizeof sprof_sampler.trace_path];
    uint64_t run_id;
    int root_pid;
    const char *root_path = NULL;
    if (!inherited_run(&run_id, &root_pid, &root_path, NULL)) {
        atomic_store(&sprof.active, false);
        return;
    }
    child_trace_path(root_path, path, sizeof path);
    sprof.start_monotonic_ns = sprof_monotonic_ns();
    /* A forked child's CPU time counts from the fork. */
    sprof.start_user_ns = sprof.start_system_ns = 0;
    if (!open_trace(path)) {
        atomic_store(&sprof.active, false);
        return;
    }
    if (self) {
        atomic_store(&self->samples, 0);
        atomic_store(&self->weight_ns, 0);
        self->tid = gettid();
        self->start_cpu_ns = 0; /* a new thread's clock */
        self->last_count = 0;
        if (sprof_timer_arm(self, &sprof.plan, sprof.period_ns, sprof.settings.signal_number) == 0)
            sprof_current_thread = self;
    }
}
