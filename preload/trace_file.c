/* The trace file from normal (not signal) context: its creation, the
 * PROCESS and MODULE records, and the end of the run (THREAD, SUMMARY,
 * symbols, END). Samples are appended by the threads' own handlers
 * (sample_handler.c), all through one O_APPEND descriptor, one whole-record
 * write at a time. NOT async-signal-safe. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "call_hooks.h"
#include "exit_names.h"
#include "module_list.h"
#include "profiler.h"
#include "sample_handler.h"
#include "signals.h"
#include "sprof/trace_format.h"
#include "trace_codec.h"

/* Guards the module list and the encoder below. */
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sprof_module_list modules;
static struct sprof_encoder encoder;

/* Appends what the encoder holds to the trace. Caller holds trace_lock. */
static void append_encoded(void)
{
    if (encoder.size > 0 && !encoder.failed)
        sprof_trace_append(encoder.data, encoder.size);
    encoder.size = 0;
    encoder.failed = false;
}


static void encode_notice(struct sprof_encoder *enc, uint32_t kind, const char *text)
{
    sprof_encoder_begin_record(enc, SPROF_REC_NOTICE);
    sprof_encoder_u32(enc, kind);
    sprof_encoder_string(enc, text);
    sprof_encoder_end_record(enc);
}
/* An INFO notice, formatted. Caller holds trace_lock. */
__attribute__((format(printf, 1, 2))) static void encode_info(const char *format, ...)
{
    char text[400];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    encode_notice(&encoder, SPROF_NOTICE_INFO, text);
}

static void encode_process_record(const char *warnings)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char exe[4096] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    /* The command line, NUL-separated as the kernel keeps it. */
    char cmdline[4096];
    size_t cmdline_size = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got;
        while (cmdline_size < sizeof cmdline &&
               (got = read(fd, cmdline + cmdline_size, sizeof cmdline - cmdline_size)) > 0)
            cmdline_size += (size_t)got;
        close(fd);
    }
    while (cmdline_size > 0 && cmdline[cmdline_size - 1] == '\0')
        cmdline_size--;

    struct sprof_encoder *enc = &encoder;
    sprof_encoder_begin_record(enc, SPROF_REC_PROCESS);
    sprof_encoder_u32(enc, (uint32_t)getpid());
    sprof_encoder_u32(enc, (uint32_t)getppid());
    sprof_encoder_u64(enc, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
    sprof_encoder_u32(enc, sprof.settings.frequency_hz);
    sprof_encoder_u32(enc, (uint32_t)sprof.plan.timer_kind);
    sprof_encoder_u64(enc, sprof.period_ns);
    sprof_encoder_u32(enc, sprof.settings.max_depth);
    sprof_encoder_u32(enc, (sprof.plan.kernel_sampled ? SPROF_PROCESS_KERNEL_SAMPLED : 0) |
                               (sprof.root ? SPROF_PROCESS_ROOT : 0));
    sprof_encoder_string(enc, exe);
    sprof_encoder_u32(enc, (uint32_t)cmdline_size);
    sprof_encoder_bytes(enc, cmdline, cmdline_size);
    sprof_encoder_string(enc, warnings);
    sprof_encoder_end_record(enc);

    if (sprof.plan.notice[0]) {
        encode_notice(enc,
                      sprof.plan.kernel_sampled ? SPROF_NOTICE_TIMER_FALLBACK
                                                : SPROF_NOTICE_KERNEL_EXCLUDED,
                      sprof.plan.notice);
    }
}

int sprof_trace_open(const char *path, const char *settings_warnings)
{
    /* Mode 0600: a profile reveals code, paths and thread names. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno;
    fd = sprof_move_fd_high(fd, NULL);
    struct stat st;
    if (sprof_fstat_raw(fd, &st) != 0) {
        int error = errno;
        close(fd);
        return error;
    }
    snprintf(sprof_sampler.trace_path, sizeof sprof_sampler.trace_path, "%s", path);
    sprof_sampler.trace_dev = st.st_dev;
    sprof_sampler.trace_ino = st.st_ino;
    atomic_store(&sprof_sampler.trace_fd, fd);

    pthread_mutex_lock(&trace_lock);
    sprof_encoder_file_header(&encoder, sprof.run_id, (uint32_t)getpid());
    encode_process_record(settings_warnings);
    sprof_module_list_update(&modules, &encoder);
    append_encoded();
    pthread_mutex_unlock(&trace_lock);
    return atomic_load(&sprof_write_failures) ? EIO : 0;
}

void sprof_trace_update_modules(void)
{
    if (!atomic_load(&sprof.active))
        return;
    pthread_mutex_lock(&trace_lock);
    sprof_module_list_update(&modules, &encoder);
    append_encoded();
    pthread_mutex_unlock(&trace_lock);
}

static uint64_t timeval_ns(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

void sprof_trace_note_start_usage(void)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return;
    sprof.start_user_ns = timeval_ns(usage.ru_utime);
    sprof.start_system_ns = timeval_ns(usage.ru_stime);
}

/* The process's own figures, taken by sprof_trace_measure_end. */
static struct rusage end_usage;
static bool end_usage_taken;

void sprof_trace_measure_end(void)
{
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (atomic_load(&t->state) != SPROF_STATE_ACTIVE)
            continue;
        sprof_thread_read_name(t->tid, t->end_name);
        t->end_cpu_ns = sprof_thread_cpu_ns(t->tid);
        t->end_measured = true;
    }
    getrusage(RUSAGE_SELF, &end_usage);
    end_usage_taken = true;
}

/* Async-signal-safe: getrusage and clock_gettime are plain system calls. */
static void append_summary(uint32_t threads)
{
    struct rusage usage = end_usage;
    if (!end_usage_taken)
        getrusage(RUSAGE_SELF, &usage);
    /* This image's own CPU time: what the process used before it (an
     * earlier image's, until an exec) is in that image's summary. */
    uint64_t user = timeval_ns(usage.ru_utime), system = timeval_ns(usage.ru_stime);
    struct sprof_summary_values values = {
        .wall_ns = sprof_monotonic_ns() - sprof.start_monotonic_ns,
        .user_ns = user > sprof.start_user_ns ? user - sprof.start_user_ns : 0,
        .system_ns = system > sprof.start_system_ns ? system - sprof.start_system_ns : 0,
        .max_rss_kb = (uint64_t)usage.ru_maxrss,
        .threads = threads,
    };
    sprof_trace_append_summary(&values);
}

/* Stops every timer, writes out every thread's samples and, when ending,
 * its THREAD record. Returns the number of threads. Async-signal-safe. Other
 * threads' perf descriptors are only disabled, not closed: their handlers
 * may be reading them at this moment. */
static uint32_t stop_and_write_threads(bool ending)
{
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (atomic_load(&t->state) == SPROF_STATE_ACTIVE)
            sprof_timer_stop_remote(t);
    }
    /* If the program ran out of descriptors, the trace has none of its
     * own: take one for the end, with libunwind's (no more unwinding now)
     * if nothing else is free. */
    if (ending && !sprof_trace_hold_fd(-1))
        sprof_trace_hold_fd(sprof_fd_guard_take_unwinder_fd());
    uint32_t threads = 0;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (atomic_load(&t->state) != SPROF_STATE_ACTIVE)
            continue;
        char name[16];
        if (ending && !t->end_measured)
            sprof_thread_read_name(t->tid, name);
        sprof_thread_acquire(t);
        sprof_thread_flush(t);
        if (ending) {
            if (t->end_measured)
                sprof_thread_write_record(t, t->end_cpu_ns, t->end_name);
            else
                sprof_thread_write_record(t, sprof_thread_cpu_ns(t->tid), name);
            atomic_store(&t->state, SPROF_STATE_FREE);
        }
        sprof_thread_release(t);
        threads++;
    }
    return threads;
}

static void close_trace(void)
{
    int fd = atomic_exchange(&sprof_sampler.trace_fd, -1);
    if (fd >= 0)
        close(fd);
}

/* Where libsprof-names.so is; empty when it cannot be said. */
static char names_library_path[4200];

void sprof_names_library_locate(const char *start_directory)
{
    Dl_info info;
    if (!dladdr((void *)sprof_names_library_locate, &info) || !info.dli_fname)
        return;
    const char *slash = strrchr(info.dli_fname, '/');
    int directory_length = slash ? (int)(slash - info.dli_fname) : 0;
    if (info.dli_fname[0] == '/')
        snprintf(names_library_path, sizeof names_library_path, "%.*s/%s", directory_length,
                 info.dli_fname, SPROF_NAMES_LIBRARY);
    else if (start_directory)
        snprintf(names_library_path, sizeof names_library_path, "%s/%.*s%s%s", start_directory,
                 directory_length, info.dli_fname, slash ? "/" : "", SPROF_NAMES_LIBRARY);
}

/* Loads libsprof-names.so, or says in why what stopped it. */
static sprof_names_write_fn *load_names_writer(char *why, size_t size)
{
    if (!names_library_path[0]) {
        snprintf(why, size, "the directory of libsprof.so is unknown");
        return NULL;
    }
    void *library = sprof_real_dlopen(names_library_path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *error = dlerror();
        snprintf(why, size, "%s", error ? error : names_library_path);
        return NULL;
    }
    sprof_names_write_fn *write_names = (sprof_names_write_fn *)dlsym(library, SPROF_NAMES_ENTRY);
    if (!write_names)
        snprintf(why, size, "%s has no %s", names_library_path, SPROF_NAMES_ENTRY);
    return write_names;
}

/* Naming runs on a stack of its own: libdw's line tables recurse about
 * 150 KB deep, and a program under `ulimit -s 128` crashed at exit in
 * them, its buffered output lost. Pages are only touched as used. Not
 * under AddressSanitizer, which tracks the program's stacks. */
#define NAMING_STACK_SIZE ((size_t)8 << 20)
#define NAMING_STACK_SMALLEST ((size_t)512 << 10)

struct names_call {
    sprof_names_write_fn *write_names;
};

/* Set when the naming failed inside libdw, or found no stack to run on;
 * said in the trace. */
static volatile bool naming_failed;

/* libdw can fail in the middle of naming when memory runs out (under
 * `ulimit -v`): it ends the process with exit(1), or faults on an
 * allocation it does not check. Either jumps back here instead; the names
 * appended so far are whole records, and sprof-analyze names the rest. */
static void names_called(void *arg)
{
    const struct names_call *call = arg;
    sigjmp_buf escape;
    if (sigsetjmp(escape, 1)) {
        sprof_signals_naming_escape(NULL);
        naming_failed = true;
        return;
    }
    sprof_signals_naming_escape(&escape);
    call->write_names(sprof_sampler.trace_path, &modules, sprof_trace_append,
                      sprof_signals_naming_failed);
    sprof_signals_naming_escape(NULL);
}

static void write_names_on_own_stack(sprof_names_write_fn *write_names)
{
    struct names_call call = {write_names};
#if defined(__SANITIZE_ADDRESS__)
    names_called(&call);
#else
    /* Under an address-space limit (ulimit -v) the 8 MB may not be had,
     * and the thread's own stack may not grow either: a smaller one, else
     * no naming at all (a crash at exit in libdw's recursion, 2 runs in 5
     * of python3 under ulimit -v 22000). */
    size_t size = NAMING_STACK_SIZE;
    uintptr_t top = 0;
    while (!top && size >= NAMING_STACK_SMALLEST) {
        top = sprof_map_guarded_stack(size, MAP_NORESERVE);
        if (!top)
            size /= 4;
    }
    if (!top) {
        naming_failed = true;
        return;
    }
    sprof_call_on_stack(names_called, &call, top);
    sprof_unmap_guarded_stack(top, size);
#endif
}

void sprof_trace_add_notice(const char *text)
{
    pthread_mutex_lock(&trace_lock);
    encode_notice(&encoder, SPROF_NOTICE_INFO, text);
    append_encoded();
    pthread_mutex_unlock(&trace_lock);
}

void sprof_trace_finish(void)
{
    sprof_current_thread = NULL;
    uint32_t threads = stop_and_write_threads(true);
    sprof_call_counts_write_all(true);
    append_summary(threads);
    pthread_mutex_lock(&trace_lock);
    uint32_t without_perf = atomic_load(&sprof_threads_without_perf);
    uint64_t pressure_ns = atomic_load(&sprof_fd_pressure_ns);
    if (without_perf || pressure_ns) {
        char text[400] = "";
        if (pressure_ns)
            snprintf(text, sizeof text,
                     "the program ran out of file descriptors (EMFILE) %.3f s into the run: "
                     "sprof gave its own back (perf_event counters replaced by CPU-time timers, "
                     "the trace opened for each write); ",
                     (double)(pressure_ns - 1) / 1e9);
        size_t used = strlen(text);
        snprintf(text + used, sizeof text - used,
                 "%u threads were sampled with CPU-time timers (tick rate) instead of perf_event, "
                 "to leave the program its file descriptors",
                 without_perf);
        encode_notice(&encoder, SPROF_NOTICE_TIMER_FALLBACK, text);
    }
    uint64_t faults = atomic_load(&sprof_unwind_faults);
    if (faults)
        encode_info("%" PRIu64 " stacks were cut at their interrupted address: unwinding them "
                    "faulted (code whose unwind tables do not hold everywhere)",
                    faults);
    uint32_t stateless = atomic_load(&sprof_threads_without_state);
    if (stateless)
        encode_info("%u threads were not sampled: sprof could not map the memory for their "
                    "samples (each reserves %u MB of address space: is there a limit, ulimit -v?)",
                    stateless, (unsigned)(sprof_thread_reserved_bytes() >> 20));
    uint32_t rearmed = atomic_load(&sprof_counters_rearmed);
    if (rearmed)
        encode_info("the program closed %u perf_event descriptors of sprof's behind its back (a "
                    "raw close system call); their threads were given new ones",
                    rearmed);
    /* The program's modules, before sprof loads its own naming library:
     * that and libdw may land on a span a dlclose left, and must not name
     * the samples taken there. */
    sprof_module_list_update(&modules, &encoder);
    sprof_names_write_fn *write_names = NULL;
    /* Only a trace with addresses loads libdw: most processes of a shell
     * script end before their first sample. */
    if (sprof.settings.symbolize &&
        (atomic_load(&sprof_total_samples) > 0 || atomic_load(&sprof_call_counts_recorded))) {
        /* Static: one caller (sprof_stop), maybe on a small stack. */
        static char why[sizeof names_library_path + 200];
        write_names = load_names_writer(why, sizeof why);
        if (!write_names) {
            static char text[sizeof why + 200];
            snprintf(text, sizeof text,
                     "addresses not named at exit (%s): sprof-analyze names them from the "
                     "binaries, which must not have changed",
                     why);
            encode_notice(&encoder, SPROF_NOTICE_INFO, text);
        }
    }
    append_encoded();
    if (write_names)
        write_names_on_own_stack(write_names);
    if (naming_failed) {
        encode_notice(&encoder, SPROF_NOTICE_INFO,
                      "naming addresses at exit stopped, or did not start: out of memory; "
                      "sprof-analyze names the rest from the binaries, which must not have "
                      "changed");
        append_encoded();
    }
    sprof_trace_append_end();
    close_trace();
    pthread_mutex_unlock(&trace_lock);
}

void sprof_trace_finish_quick(void)
{
    sprof_current_thread = NULL;
    uint32_t threads = stop_and_write_threads(true);
    sprof_call_counts_write_all(true);
    append_summary(threads);
    sprof_trace_append_end();
    close_trace();
}

void sprof_trace_before_exec(void)
{
    if (!atomic_load(&sprof.active))
        return;
    /* The calling thread's timer is released, not just stopped: closing a
     * perf event waits for its pending signal work, so any signal it raised
     * is queued by then and delivered to our handler as close returns. One
     * still pending at exec would kill the new program, which has no
     * handler yet. (If the program blocks the signal, it stays blocked and
     * pending through exec, and the new image's handler swallows it.) */
    struct sprof_thread *self = sprof_current_thread;
    if (self)
        sprof_timer_disarm(self);
    uint32_t threads = stop_and_write_threads(false);
    sprof_call_counts_write_all(false);
    append_summary(threads);
    pthread_mutex_lock(&trace_lock);
    sprof_module_list_update(&modules, &encoder);
    append_encoded();
    pthread_mutex_unlock(&trace_lock);
}

void sprof_trace_after_failed_exec(void)
{
    if (!atomic_load(&sprof.active))
        return;
    struct sprof_thread *self = sprof_current_thread;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (atomic_load(&t->state) == SPROF_STATE_ACTIVE && t != self)
            sprof_timer_resume_remote(t, sprof.period_ns);
    }
    if (self) {
        self->last_count = 0;
        sprof_timer_arm(self, &sprof.plan, sprof.period_ns, sprof.settings.signal_number);
    }
}

void sprof_trace_before_fork(void)
{
    pthread_mutex_lock(&trace_lock);
}

void sprof_trace_after_fork_parent(void)
{
    pthread_mutex_unlock(&trace_lock);
}

void sprof_trace_after_fork_child(struct sprof_thread *self)
{
    pthread_mutex_init(&trace_lock, NULL);
    close_trace();
    sprof_trace_drop_pending();
    encoder.size = 0;
    sprof_module_list_free(&modules);
    atomic_store(&sprof_total_samples, 0);
    atomic_store(&sprof_total_weight_ns, 0);
    atomic_store(&sprof_lost_samples, 0);
    atomic_store(&sprof_truncated_stacks, 0);
    atomic_store(&sprof_write_failures, 0);
    atomic_store(&sprof_next_table_id, 0);
    sprof_threads_after_fork_child(self);
    sprof_call_counts_after_fork_child();
}
