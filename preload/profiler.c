/* Start-up, exit and fork: the life cycle of the profiler in a process.
 * NOT async-signal-safe. */
#include "profiler.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "sample_handler.h"

/* Tells the processes a run starts that they are children of it, and where
 * the run's trace is: "<run id>:<trace path>". */
#define RUN_VARIABLE "SPROF_RUN"

struct sprof_profiler sprof;

uint64_t sprof_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* At most one line on the program's stderr, ever. */
static void print_line(const char *text)
{
    if (sprof.stderr_line_printed || !sprof.root)
        return;
    sprof.stderr_line_printed = true;
    char line[sizeof sprof.trace_path + 1400];
    int n = snprintf(line, sizeof line, "sprof: %s\n", text);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1, line[n - 1] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}

static uint64_t new_run_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id)
        id = sprof_monotonic_ns() ^ ((uint64_t)getpid() << 32);
    return id ? id : 1;
}

/* Reads SPROF_RUN: sets run id and root trace path when we are a child. */
static bool inherited_run(uint64_t *run_id, const char **root_path)
{
    const char *value = getenv(RUN_VARIABLE);
    if (!value)
        return false;
    char *end;
    errno = 0;
    unsigned long long id = strtoull(value, &end, 16);
    if (errno || end == value || *end != ':' || end[1] != '/')
        return false;
    *run_id = id;
    *root_path = end + 1;
    return true;
}

static void on_thread_key_destroyed(void *value)
{
    sprof_thread_end(value);
}

static void on_fork_prepare(void);
static void on_fork_parent(void);
static void on_fork_child(void);

static bool open_trace_and_start(void)
{
    int error = sprof_writer_open(sprof.trace_path, sprof.settings.warnings);
    if (error) {
        char text[4400];
        snprintf(text, sizeof text, "cannot write trace %s (%s); not profiling",
                 sprof.trace_path, strerror(error));
        print_line(text);
        return false;
    }
    error = sprof_writer_start();
    if (error) {
        char text[256];
        snprintf(text, sizeof text, "cannot start the writer thread (%s); not profiling",
                 strerror(error));
        print_line(text);
        return false;
    }
    return true;
}

__attribute__((constructor)) static void sprof_start(void)
{
    /* Never profile setuid/setgid programs, nor take settings there. */
    if (getauxval(AT_SECURE))
        return;
    uint64_t run_id = 0;
    const char *root_path = NULL;
    bool child = inherited_run(&run_id, &root_path);
    sprof.root = !child;

    char cwd[4096];
    const char *base = getcwd(cwd, sizeof cwd) ? cwd : NULL;
    sprof_settings_read(&sprof.settings, base);
    if (child && !sprof.settings.children)
        return;
    sprof.start_monotonic_ns = sprof_monotonic_ns();
    sprof.period_ns = 1000000000u / sprof.settings.frequency_hz;
    if (child) {
        sprof.run_id = run_id;
        snprintf(sprof.trace_path, sizeof sprof.trace_path, "%s.%d", root_path, (int)getpid());
    } else {
        sprof.run_id = new_run_id();
        snprintf(sprof.trace_path, sizeof sprof.trace_path, "%s", sprof.settings.output);
        char value[4300];
        snprintf(value, sizeof value, "%016" PRIx64 ":%s", sprof.run_id, sprof.trace_path);
        setenv(RUN_VARIABLE, value, 1);
    }

    if (!sprof_timer_plan_choose(&sprof.plan, sprof.settings.timer, sprof.period_ns,
                                 sprof.settings.signal_number)) {
        char text[400];
        snprintf(text, sizeof text, "%s; not profiling", sprof.plan.notice);
        print_line(text);
        return;
    }
    sprof_sampler.signal_number = sprof.settings.signal_number;
    sprof_sampler.timer_kind = sprof.plan.timer_kind;
    sprof_sampler.period_ns = sprof.period_ns;
    sprof_sampler.counter_weights = sprof.plan.kernel_sampled;
    sprof_sampler.max_depth = sprof.settings.max_depth;
    sprof_sampler.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pthread_key_create(&sprof.thread_key, on_thread_key_destroyed) != 0)
        return;
    int error = sprof_sampler_install();
    if (error) {
        char text[256];
        snprintf(text, sizeof text, "cannot install the signal handler (%s); not profiling",
                 strerror(error));
        print_line(text);
        return;
    }
    if (!open_trace_and_start())
        return;
    pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
    atomic_store(&sprof.active, true);
    sprof_thread_begin();

    if (sprof.settings.warnings[0]) {
        /* Said now, while it can still help; this is then the one line. */
        char text[sizeof sprof.settings.warnings + sizeof sprof.trace_path + 16];
        snprintf(text, sizeof text, "%s; trace: %s", sprof.settings.warnings, sprof.trace_path);
        print_line(text);
    }
}

__attribute__((destructor)) static void sprof_stop(void)
{
    if (!atomic_exchange(&sprof.active, false))
        return;
    uint64_t weight_ns = 0;
    uint64_t samples = sprof_writer_finish(&weight_ns);
    if (!sprof.settings.quiet) {
        char text[4400];
        snprintf(text, sizeof text, "%" PRIu64 " samples (%.3f s of CPU) written to %s", samples,
                 (double)weight_ns / 1e9, sprof.trace_path);
        print_line(text);
    }
}

static void on_fork_prepare(void)
{
    if (atomic_load(&sprof.active))
        sprof_writer_before_fork();
}

static void on_fork_parent(void)
{
    if (atomic_load(&sprof.active))
        sprof_writer_after_fork_parent();
}

static void on_fork_child(void)
{
    if (!atomic_load(&sprof.active))
        return;
    /* The inherited perf descriptor is the parent thread's counter: close
     * our copy only (disabling it would stop the parent's sampling). POSIX
     * timers are not inherited at all. */
    struct sprof_thread *self = sprof_current_thread;
    sprof_current_thread = NULL;
    if (self) {
        if (self->perf_fd >= 0)
            close(self->perf_fd);
        self->perf_fd = -1;
        self->has_timer = false;
    }
    sprof_writer_after_fork_child();
    if (sprof_sampler.wake_fd >= 0) {
        close(sprof_sampler.wake_fd);
        sprof_sampler.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    sprof.root = false;
    if (!sprof.settings.children) {
        atomic_store(&sprof.active, false);
        return;
    }
    const char *root_path = NULL;
    uint64_t run_id;
    if (!inherited_run(&run_id, &root_path))
        root_path = sprof.trace_path;
    char path[sizeof sprof.trace_path];
    snprintf(path, sizeof path, "%s", root_path);
    if (snprintf(sprof.trace_path, sizeof sprof.trace_path, "%.4096s.%d", path, (int)getpid()) < 0)
        return;
    sprof.start_monotonic_ns = sprof_monotonic_ns();
    if (!open_trace_and_start()) {
        atomic_store(&sprof.active, false);
        return;
    }
    if (self) {
        /* Start this thread afresh: its ring held the parent's samples. */
        atomic_store(&self->head, 0);
        atomic_store(&self->tail, 0);
        atomic_store(&self->samples, 0);
        atomic_store(&self->weight_ns, 0);
        atomic_store(&self->lost, 0);
        atomic_store(&self->truncated, 0);
        self->tid = gettid();
        if (sprof_timer_arm(self, &sprof.plan, sprof.period_ns, sprof.settings.signal_number) == 0)
            sprof_current_thread = self;
    }
}
