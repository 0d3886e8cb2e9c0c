/* The writer: a thread of its own that drains every thread's sample ring
 * every few tens of milliseconds (sooner when a ring fills), deduplicates
 * stacks and streams records to the trace, so memory stays bounded and a
 * killed program leaves a readable trace. NOT async-signal-safe. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"
#include "sprof/trace_format.h"

#define FLUSH_INTERVAL_MS 50

/* One batch of samples of one thread, aggregated by stack. */
struct batch {
    struct sprof_map index; /* stack id -> position */
    uint32_t *stack_ids;
    uint32_t *samples;
    uint64_t *weights;
    size_t count, capacity;
};

static struct {
    pthread_mutex_t lock; /* everything below */
    int fd;
    struct sprof_encoder enc;
    struct sprof_stack_table stacks;
    struct sprof_module_list modules;
    struct batch batch;
    uint64_t scratch[SPROF_STACK_MAX_DEPTH];
    /* Totals of threads already retired. */
    uint64_t samples, weight_ns, lost, truncated;
    uint32_t threads;
    int write_error;

    pthread_t thread;
    bool thread_running;
    _Atomic bool stop;
} writer = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static void batch_add(struct batch *b, uint32_t stack_id, uint64_t weight)
{
    uint32_t at;
    if (sprof_map_get(&b->index, stack_id, &at)) {
        b->samples[at]++;
        b->weights[at] += weight;
        return;
    }
    if (b->count == b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 256;
        uint32_t *ids = realloc(b->stack_ids, capacity * sizeof *ids);
        if (ids)
            b->stack_ids = ids;
        uint32_t *samples = realloc(b->samples, capacity * sizeof *samples);
        if (samples)
            b->samples = samples;
        uint64_t *weights = realloc(b->weights, capacity * sizeof *weights);
        if (weights)
            b->weights = weights;
        if (!ids || !samples || !weights)
            return;
        b->capacity = capacity;
    }
    if (!sprof_map_put(&b->index, stack_id, (uint32_t)b->count))
        return;
    b->stack_ids[b->count] = stack_id;
    b->samples[b->count] = 1;
    b->weights[b->count] = weight;
    b->count++;
}

static void write_batch(struct batch *b, pid_t tid)
{
    /* Keep each record well under the payload limit. */
    const size_t per_record = 8192;
    for (size_t first = 0; first < b->count; first += per_record) {
        size_t n = b->count - first < per_record ? b->count - first : per_record;
        sprof_encoder_begin_record(&writer.enc, SPROF_REC_SAMPLES);
        sprof_encoder_u32(&writer.enc, (uint32_t)tid);
        sprof_encoder_u32(&writer.enc, (uint32_t)n);
        for (size_t i = first; i < first + n; i++) {
            sprof_encoder_u32(&writer.enc, b->stack_ids[i]);
            sprof_encoder_u32(&writer.enc, b->samples[i]);
            sprof_encoder_u64(&writer.enc, b->weights[i]);
        }
        sprof_encoder_end_record(&writer.enc);
    }
    b->count = 0;
    sprof_map_free(&b->index);
}

/* Moves a thread's ring contents into the trace. Caller holds writer.lock. */
static void drain_thread(struct sprof_thread *t)
{
    uint64_t head = atomic_load_explicit(&t->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
    uint64_t mask = t->ring_words - 1;
    atomic_store_explicit(&t->kicked, 0, memory_order_relaxed);
    while (tail < head) {
        uint64_t header = t->ring[tail & mask];
        uint32_t depth = (uint32_t)(header & 0xffff);
        uint16_t flags = (uint16_t)(header >> 16);
        if ((header >> 32) != SPROF_RING_MAGIC || depth > SPROF_STACK_MAX_DEPTH ||
            2 + depth > head - tail) {
            tail = head; /* cannot happen with a sound ring; never loop on it */
            break;
        }
        uint64_t weight = t->ring[(tail + 1) & mask];
        for (uint32_t i = 0; i < depth; i++)
            writer.scratch[i] = t->ring[(tail + 2 + i) & mask];
        uint32_t id = sprof_stack_table_intern(&writer.stacks, writer.scratch, (uint16_t)depth,
                                               flags, &writer.enc);
        if (id != SPROF_STACK_ID_NONE)
            batch_add(&writer.batch, id, weight);
        tail += 2 + depth;
    }
    atomic_store_explicit(&t->tail, tail, memory_order_release);
    write_batch(&writer.batch, t->tid);
}

static void write_thread_record(const struct sprof_thread *t, uint64_t cpu_ns, const char *name)
{
    sprof_encoder_begin_record(&writer.enc, SPROF_REC_THREAD);
    sprof_encoder_u32(&writer.enc, (uint32_t)t->tid);
    sprof_encoder_u32(&writer.enc, 0);
    sprof_encoder_u64(&writer.enc, cpu_ns);
    sprof_encoder_u64(&writer.enc, atomic_load(&t->samples));
    sprof_encoder_u64(&writer.enc, atomic_load(&t->weight_ns));
    sprof_encoder_string(&writer.enc, name);
    sprof_encoder_end_record(&writer.enc);
}

static void retire_counts(const struct sprof_thread *t)
{
    writer.samples += atomic_load(&t->samples);
    writer.weight_ns += atomic_load(&t->weight_ns);
    writer.lost += atomic_load(&t->lost);
    writer.truncated += atomic_load(&t->truncated);
    writer.threads++;
}

static void flush_to_file(void)
{
    if (writer.enc.size == 0 || writer.fd < 0)
        return;
    int error = sprof_encoder_flush(&writer.enc, writer.fd);
    if (error) {
        /* Keep going without growing without bound. */
        writer.write_error = error;
        writer.enc.size = 0;
    }
}

/* One pass: new modules, every thread's samples, retired threads. */
static void writer_cycle(void)
{
    pthread_mutex_lock(&writer.lock);
    sprof_module_list_update(&writer.modules, &writer.enc);
    pthread_mutex_lock(&sprof_registry_lock);
    struct sprof_thread **link = &sprof_registry;
    while (*link) {
        struct sprof_thread *t = *link;
        bool exited = atomic_load_explicit(&t->phase, memory_order_acquire) == SPROF_THREAD_EXITED;
        drain_thread(t);
        if (exited) {
            write_thread_record(t, t->cpu_ns, t->name);
            retire_counts(t);
            *link = t->next;
            munmap(t->ring, t->ring_words * sizeof *t->ring);
            free(t);
        } else {
            link = &t->next;
        }
    }
    pthread_mutex_unlock(&sprof_registry_lock);
    flush_to_file();
    pthread_mutex_unlock(&writer.lock);
}

static void *writer_main(void *unused)
{
    (void)unused;
    while (!atomic_load(&writer.stop)) {
        struct pollfd wake = {.fd = sprof_sampler.wake_fd, .events = POLLIN};
        if (poll(&wake, wake.fd >= 0 ? 1 : 0, FLUSH_INTERVAL_MS) > 0) {
            uint64_t count;
            ssize_t ignored = read(wake.fd, &count, sizeof count);
            (void)ignored;
        }
        writer_cycle();
    }
    return NULL;
}

static void write_process_record(const char *warnings)
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

    struct sprof_encoder *enc = &writer.enc;
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
        sprof_encoder_begin_record(enc, SPROF_REC_NOTICE);
        sprof_encoder_u32(enc, sprof.plan.kernel_sampled ? SPROF_NOTICE_TIMER_FALLBACK
                                                         : SPROF_NOTICE_KERNEL_EXCLUDED);
        sprof_encoder_string(enc, sprof.plan.notice);
        sprof_encoder_end_record(enc);
    }
}

int sprof_writer_open(const char *path, const char *settings_warnings)
{
    /* Mode 0600: a profile reveals code, paths and thread names. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno;
    pthread_mutex_lock(&writer.lock);
    writer.fd = fd;
    sprof_encoder_file_header(&writer.enc, sprof.run_id, (uint32_t)getpid());
    write_process_record(settings_warnings);
    sprof_module_list_update(&writer.modules, &writer.enc);
    flush_to_file();
    int error = writer.write_error;
    pthread_mutex_unlock(&writer.lock);
    return error;
}

int sprof_writer_start(void)
{
    sigset_t all, old;
    sigfillset(&all);
    /* The writer inherits a mask that blocks everything: the program's
     * signals are never delivered to it. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_store(&writer.stop, false);
    int error = sprof_real_pthread_create(&writer.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (error == 0) {
        writer.thread_running = true;
        pthread_setname_np(writer.thread, "sprof-writer");
    }
    return error;
}

static uint64_t timeval_ns(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

static void write_summary(uint64_t profiler_cpu_ns)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    uint64_t user = timeval_ns(usage.ru_utime);
    uint64_t system = timeval_ns(usage.ru_stime);
    /* The writer's own CPU is the profiler's, not the program's. rusage
     * does not split it into user and system: take it from user first. */
    uint64_t from_user = profiler_cpu_ns < user ? profiler_cpu_ns : user;
    user -= from_user;
    system -= profiler_cpu_ns - from_user < system ? profiler_cpu_ns - from_user : system;

    struct sprof_encoder *enc = &writer.enc;
    sprof_encoder_begin_record(enc, SPROF_REC_SUMMARY);
    sprof_encoder_u64(enc, sprof_monotonic_ns() - sprof.start_monotonic_ns);
    sprof_encoder_u64(enc, user);
    sprof_encoder_u64(enc, system);
    sprof_encoder_u64(enc, profiler_cpu_ns);
    sprof_encoder_u64(enc, (uint64_t)usage.ru_maxrss);
    sprof_encoder_u64(enc, writer.samples);
    sprof_encoder_u64(enc, writer.weight_ns);
    sprof_encoder_u64(enc, writer.lost);
    sprof_encoder_u64(enc, writer.truncated);
    sprof_encoder_u32(enc, writer.threads);
    sprof_encoder_u32(enc, 0);
    sprof_encoder_end_record(enc);
}

uint64_t sprof_writer_finish(uint64_t *weight_ns)
{
    /* Stop every timer. Other threads' perf descriptors are only disabled,
     * not closed: their handlers may still be reading them. */
    pthread_mutex_lock(&sprof_registry_lock);
    for (struct sprof_thread *t = sprof_registry; t; t = t->next) {
        if (atomic_load(&t->phase) != SPROF_THREAD_RUNNING)
            continue;
        if (t == sprof_current_thread)
            sprof_thread_end(t);
        else
            sprof_timer_stop_remote(t);
    }
    pthread_mutex_unlock(&sprof_registry_lock);

    uint64_t profiler_cpu_ns = 0;
    if (writer.thread_running) {
        clockid_t clock;
        struct timespec ts;
        atomic_store(&writer.stop, true);
        if (pthread_getcpuclockid(writer.thread, &clock) == 0 && clock_gettime(clock, &ts) == 0)
            profiler_cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        pthread_join(writer.thread, NULL);
        writer.thread_running = false;
    }
    writer_cycle();

    pthread_mutex_lock(&writer.lock);
    pthread_mutex_lock(&sprof_registry_lock);
    for (struct sprof_thread *t = sprof_registry; t; t = t->next) {
        char name[16] = "";
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)t->tid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, name, sizeof name - 1);
            name[n > 0 ? n : 0] = '\0';
            name[strcspn(name, "\n")] = '\0';
            close(fd);
        }
        write_thread_record(t, sprof_thread_cpu_ns(t->tid), name);
        retire_counts(t);
    }
    pthread_mutex_unlock(&sprof_registry_lock);
    write_summary(profiler_cpu_ns);
    flush_to_file();
    if (sprof.settings.symbolize) {
        sprof_symbolize_addresses(&writer.stacks, &writer.modules, &writer.enc);
        flush_to_file();
    }
    sprof_encoder_begin_record(&writer.enc, SPROF_REC_END);
    sprof_encoder_end_record(&writer.enc);
    flush_to_file();
    close(writer.fd);
    writer.fd = -1;
    *weight_ns = writer.weight_ns;
    uint64_t samples = writer.samples;
    pthread_mutex_unlock(&writer.lock);
    return samples;
}

void sprof_writer_before_fork(void)
{
    pthread_mutex_lock(&writer.lock);
    pthread_mutex_lock(&sprof_registry_lock);
}

void sprof_writer_after_fork_parent(void)
{
    pthread_mutex_unlock(&sprof_registry_lock);
    pthread_mutex_unlock(&writer.lock);
}

void sprof_writer_after_fork_child(void)
{
    pthread_mutex_init(&writer.lock, NULL);
    if (writer.fd >= 0)
        close(writer.fd);
    writer.fd = -1;
    writer.enc.size = 0;
    sprof_stack_table_free(&writer.stacks);
    sprof_module_list_free(&writer.modules);
    writer.samples = writer.weight_ns = writer.lost = writer.truncated = 0;
    writer.threads = 0;
    writer.write_error = 0;
    writer.thread_running = false;
    sprof_registry_after_fork_child();
}
