/* Threads: pthread_create is interposed so every thread, including those a
 * program creates later, is sampled without any call from the program. A
 * pthread key's destructor notices the thread's end, however it ends
 * (return or pthread_exit). NOT async-signal-safe. */
#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "call_hooks.h"
#include "profiler.h"
#include "sprof/trace_format.h"
#include "sample_handler.h"
#include "signals.h"

__thread struct sprof_thread *sprof_current_thread __attribute__((tls_model("initial-exec")));

/* Buffer sizes per thread: a frame tree of up to 2^20 nodes (stacks that
 * share callers share nodes) before the thread starts a new table, up to
 * 8192 distinct stacks between writes, and 32 KB of records between
 * writes. The tree's space is only reserved here: the handler makes it
 * usable as the tree grows (sample_handler.c), so a thread uses memory,
 * and counts against the system's commit limit, for the nodes it has. */
#define NODE_CAPACITY (1u << 20)
/* Under an address-space limit (ulimit -v), where every reserved byte
 * counts and a program's own threads could not be made, a 32 times
 * smaller tree: a thread then starts new tables sooner. */
#define NODE_CAPACITY_LIMITED (1u << 15)
#define PENDING_CAPACITY 8192u
#define OUT_BYTES (32u * 1024u)

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

int sprof_real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                              void *(*start)(void *), void *arg)
{
    static _Atomic(pthread_create_fn) real;
    pthread_create_fn fn = atomic_load_explicit(&real, memory_order_acquire);
    if (!fn) {
        fn = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        atomic_store_explicit(&real, fn, memory_order_release);
    }
    return fn(thread, attr, start, arg);
}

uint64_t sprof_thread_cpu_ns(pid_t tid)
{
    /* The kernel's per-thread CPU clock id, as glibc's pthread_getcpuclockid
     * builds it: it works for any thread of the process, by tid. */
    clockid_t clock = (clockid_t)(((unsigned)~tid << 3) | 6);
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Carves the next size bytes, 16-byte aligned, out of a mapping. */
static void *carve(uint8_t **at, size_t size)
{
    void *start = *at;
    *at += (size + 15) & ~(size_t)15;
    return start;
}

static uint32_t node_capacity(void)
{
    static _Atomic uint32_t chosen;
    uint32_t capacity = atomic_load(&chosen);
    if (!capacity) {
        struct rlimit limit;
        capacity = getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                       ? NODE_CAPACITY_LIMITED
                       : NODE_CAPACITY;
        atomic_store(&chosen, capacity);
    }
    return capacity;
}

static size_t nodes_bytes(uint32_t capacity)
{
    return ((capacity + 1) * sizeof(struct sprof_frame_node) + 4095) / 4096 * 4096;
}

size_t sprof_thread_reserved_bytes(void)
{
    uint32_t capacity = node_capacity();
    return nodes_bytes(capacity) + 2u * capacity * sizeof(uint32_t);
}

static struct sprof_thread *new_state(void)
{
    size_t pending = PENDING_CAPACITY * sizeof(uint32_t);
    size_t path = SPROF_STACK_MAX_DEPTH * (sizeof(uint64_t) + sizeof(uint32_t));
    size_t frames = (SPROF_STACK_MAX_DEPTH + 33) * sizeof(void *);
    size_t pcs = SPROF_STACK_MAX_DEPTH * sizeof(uint64_t);
    size_t size = sizeof(struct sprof_thread) + pending + path + OUT_BYTES + frames + pcs +
                  8 * 16;
    /* The tree: reserved, inaccessible until the handler needs it. */
    uint32_t capacity = node_capacity();
    size_t nodes = nodes_bytes(capacity);
    size_t index = 2u * capacity * sizeof(uint32_t);
    uint8_t *tree = mmap(NULL, nodes + index, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (tree == MAP_FAILED)
        return NULL;
    /* mmap, not malloc: pages are touched only as they are used; no swap
     * is reserved for the untouched rest. */
    uint8_t *base = mmap(NULL, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        munmap(tree, nodes + index);
        return NULL;
    }
    uint8_t *at = base;
    struct sprof_thread *t = carve(&at, sizeof *t);
    t->mapping = base;
    t->mapping_size = size;
    t->nodes = (struct sprof_frame_node *)tree;
    t->node_capacity = capacity;
    t->node_index = (uint32_t *)(tree + nodes);
    t->index_max = 2u * capacity;
    t->pending = carve(&at, pending);
    t->pending_capacity = PENDING_CAPACITY;
    t->path_addresses = carve(&at, SPROF_STACK_MAX_DEPTH * sizeof(uint64_t));
    t->path_nodes = carve(&at, SPROF_STACK_MAX_DEPTH * sizeof(uint32_t));
    t->out = carve(&at, OUT_BYTES);
    t->out_size = OUT_BYTES;
    t->scratch_frames = carve(&at, frames);
    t->scratch_pcs = carve(&at, pcs);
    t->perf_fd = -1;
    atomic_init(&t->perf_fd_changing, -1);
    sprof_thread_reset_buffers(t);
    return t;
}

/* A free state to reuse, or a new one pushed on the list. */
_Atomic uint32_t sprof_threads_without_state;

static struct sprof_thread *claim_state(void)
{
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        int free_state = SPROF_STATE_FREE;
        if (atomic_load(&t->state) == SPROF_STATE_FREE &&
            atomic_compare_exchange_strong(&t->state, &free_state, SPROF_STATE_ACTIVE))
            return t;
    }
    struct sprof_thread *t = new_state();
    if (!t)
        return NULL;
    atomic_store(&t->state, SPROF_STATE_ACTIVE);
    struct sprof_thread *head = atomic_load(&sprof_threads);
    do
        t->next = head;
    while (!atomic_compare_exchange_weak(&sprof_threads, &head, t));
    return t;
}

void sprof_thread_acquire(struct sprof_thread *t)
{
    /* A handler or flusher holds it for microseconds; bound the wait anyway
     * (a thread stopped in a debugger must not hang the program's exit). */
    for (int tries = 0; tries < 100000; tries++) {
        int idle = SPROF_IDLE;
        if (atomic_compare_exchange_weak(&t->busy, &idle, SPROF_BUSY_FLUSHER))
            return;
        if (tries > 100)
            sched_yield();
    }
}

void sprof_thread_release(struct sprof_thread *t)
{
    atomic_store_explicit(&t->busy, SPROF_IDLE, memory_order_release);
}

static void reset_state(struct sprof_thread *t)
{
    sprof_thread_reset_buffers(t);
    t->tid = gettid();
    t->start_cpu_ns = sprof_thread_cpu_ns(t->tid);
    t->perf_fd = -1;
    atomic_store(&t->perf_fd_changing, -1);
    t->has_timer = false;
    t->last_count = 0;
    t->warming_up = false;
    atomic_store(&t->samples, 0);
    atomic_store(&t->weight_ns, 0);
    t->last_flush_ns = sprof_monotonic_ns();
    /* The thread's own stack, to notice when the handler runs elsewhere. */
    t->stack_low = t->stack_high = 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *low;
        size_t size;
        if (pthread_attr_getstack(&attr, &low, &size) == 0) {
            t->stack_low = (uintptr_t)low;
            t->stack_high = (uintptr_t)low + size;
        }
        pthread_attr_destroy(&attr);
    }
}

static struct sprof_thread *begin_thread(void);

/* A thread cancelled inside sprof's start or end (close, open and read are
 * cancellation points) would leave its locks held, and every later thread
 * would wait on them: cancellation waits until sprof is done. */
struct sprof_thread *sprof_thread_begin(void)
{
    if (!atomic_load(&sprof.active) || sprof_current_thread)
        return sprof_current_thread;
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    struct sprof_thread *t = begin_thread();
    pthread_setcancelstate(cancel_state, NULL);
    return t;
}

static struct sprof_thread *begin_thread(void)
{
    struct sprof_thread *t = claim_state();
    if (!t) {
        atomic_fetch_add(&sprof_threads_without_state, 1);
        return NULL;
    }
    sprof_thread_acquire(t);
    reset_state(t);
    sprof_thread_release(t);
    sprof_current_thread = t;
    if (!sprof_sampler.threads_start_cold)
        sprof_sampler_warm_up(t);
    if (sprof_timer_arm(t, &sprof.plan, sprof.period_ns, sprof.settings.signal_number) != 0) {
        sprof_current_thread = NULL;
        atomic_store(&t->state, SPROF_STATE_FREE);
        return NULL;
    }
    pthread_setspecific(sprof.thread_key, t);
    return t;
}

void sprof_thread_read_name(pid_t tid, char name[16])
{
    /* Async-signal-safe (the _exit and fatal-signal paths use it): the path
     * is built by hand, not with snprintf. */
    char path[64] = "/proc/self/task/";
    size_t at = strlen(path);
    char digits[16];
    int count = 0;
    unsigned value = (unsigned)tid;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value && count < (int)sizeof digits);
    while (count > 0)
        path[at++] = digits[--count];
    memcpy(path + at, "/comm", 6);
    name[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, name, 15);
    name[n > 0 ? n : 0] = '\0';
    name[strcspn(name, "\n")] = '\0';
    close(fd);
}

static void end_thread(struct sprof_thread *t);

void sprof_thread_end(struct sprof_thread *t)
{
    if (!t || atomic_load(&t->state) != SPROF_STATE_ACTIVE)
        return;
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    end_thread(t);
    pthread_setcancelstate(cancel_state, NULL);
}

static void end_thread(struct sprof_thread *t)
{
    /* From here the handler ignores this thread's signals. */
    sprof_current_thread = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    sprof_timer_disarm(t);
    char name[16];
    prctl(PR_GET_NAME, name, 0, 0, 0);
    name[15] = '\0';
    sprof_thread_acquire(t);
    if (atomic_load(&sprof.active)) {
        sprof_thread_flush(t);
        sprof_thread_write_record(t, sprof_thread_cpu_ns(t->tid), name);
        sprof_call_counts_end_thread();
    }
    sprof_thread_release(t);
    atomic_store(&t->state, SPROF_STATE_FREE);
}

void sprof_threads_after_fork_child(struct sprof_thread *self)
{
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        /* The parent writes out its own threads' samples. */
        atomic_store(&t->busy, SPROF_IDLE);
        sprof_thread_reset_buffers(t);
        if (t != self)
            atomic_store(&t->state, SPROF_STATE_FREE);
    }
}

/* Runs a new thread's start routine with sampling on (interposed.c). */
void *sprof_start_sampled_thread(void *data)
{
    struct sprof_start_info info = *(struct sprof_start_info *)data;
    free(data);
    /* Programs (liblzma among them) block every signal around
     * pthread_create, so a new thread would start with ours blocked and
     * never be sampled. Unblock the sampling signal alone, unless the
     * program handles that signal itself; the program still sees its
     * creator's mask (signals.c). */
    sprof_signals_thread_start(info.sampling_blocked);
    sprof_thread_begin();
    return info.start(info.arg);
}
