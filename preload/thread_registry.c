/* Threads: pthread_create is interposed so every thread, including those a
 * program creates later, is sampled without any call from the program. A
 * pthread key's destructor notices the thread's end, however it ends
 * (return or pthread_exit). NOT async-signal-safe. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"

__thread struct sprof_thread *sprof_current_thread __attribute__((tls_model("initial-exec")));

pthread_mutex_t sprof_registry_lock = PTHREAD_MUTEX_INITIALIZER;
struct sprof_thread *sprof_registry;

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

static void free_thread(struct sprof_thread *t)
{
    if (t->ring)
        munmap(t->ring, t->ring_words * sizeof *t->ring);
    free(t);
}

struct sprof_thread *sprof_thread_begin(void)
{
    if (!atomic_load(&sprof.active) || sprof_current_thread)
        return sprof_current_thread;
    struct sprof_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->tid = gettid();
    t->perf_fd = -1;
    size_t bytes = (size_t)sprof.settings.buffer_kb * 1024;
    size_t words = 1;
    while (words * 2 * sizeof(uint64_t) <= bytes)
        words *= 2;
    t->ring = mmap(NULL, words * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t->ring == MAP_FAILED) {
        free(t);
        return NULL;
    }
    t->ring_words = words;

    sprof_current_thread = t;
    sprof_sampler_warm_up(t);
    if (sprof_timer_arm(t, &sprof.plan, sprof.period_ns, sprof.settings.signal_number) != 0) {
        sprof_current_thread = NULL;
        free_thread(t);
        return NULL;
    }
    pthread_mutex_lock(&sprof_registry_lock);
    t->next = sprof_registry;
    sprof_registry = t;
    pthread_mutex_unlock(&sprof_registry_lock);
    pthread_setspecific(sprof.thread_key, t);
    return t;
}

void sprof_thread_end(struct sprof_thread *t)
{
    if (!t)
        return;
    /* From here the handler ignores this thread's signals. */
    sprof_current_thread = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    sprof_timer_disarm(t);
    t->cpu_ns = sprof_thread_cpu_ns(t->tid);
    prctl(PR_GET_NAME, t->name, 0, 0, 0);
    atomic_store_explicit(&t->phase, SPROF_THREAD_EXITED, memory_order_release);
}

void sprof_registry_after_fork_child(void)
{
    struct sprof_thread *self = sprof_current_thread;
    struct sprof_thread *t = sprof_registry;
    while (t) {
        struct sprof_thread *next = t->next;
        if (t != self)
            free_thread(t);
        t = next;
    }
    sprof_registry = self;
    if (self)
        self->next = NULL;
    pthread_mutex_init(&sprof_registry_lock, NULL);
}

struct start_info {
    void *(*start)(void *);
    void *arg;
};

static void *start_sampled_thread(void *data)
{
    struct start_info info = *(struct start_info *)data;
    free(data);
    sprof_thread_begin();
    return info.start(info.arg);
}

SPROF_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*start)(void *), void *arg)
{
    struct start_info *info = NULL;
    if (atomic_load(&sprof.active))
        info = malloc(sizeof *info);
    if (!info)
        return sprof_real_pthread_create(thread, attr, start, arg);
    info->start = start;
    info->arg = arg;
    int error = sprof_real_pthread_create(thread, attr, start_sampled_thread, info);
    if (error)
        free(info);
    return error;
}
