/* Taking a sample must never call malloc (README: the handler is
 * async-signal-safe). Run under libsprof.so by stress.py.
 *
 * This program defines malloc, calloc, realloc, free and the aligned
 * allocators itself: the executable comes first in symbol lookup, so every
 * allocation in the process, libsprof.so's and libunwind's included, goes
 * through them (they forward to the next definition: glibc's, or ASan's in
 * a sanitized build). At start it wraps the sampling signal's handler,
 * which libsprof.so installed before main (read with libc's own sigaction:
 * the interposed one shows the program its own view), in its own: the wrapper marks
 * the thread as inside a sample (a thread-local counter) while the real
 * handler runs. An allocation seen while the mark is set is counted, with
 * its caller. Only sampling signals are marked: the warm-up signal a new
 * thread raises on itself (SI_TKILL) is the one-time set-up that is allowed
 * to allocate, and is not a sample.
 *
 * The work is made to reach every path of the handler: stacks of many
 * depths (new stacks, a full table that is written out and reset), threads
 * that sleep (written out by other threads' handlers), threads that end and
 * are replaced, and dlopen (new code the unwinder has not seen).
 *
 * Usage: nomalloc [SECONDS]  (default 3)
 * Prints the samples and the allocations seen in them; exits 3 if any
 * allocation happened in a sample, 2 if the handler is not installed or
 * too few samples were seen to judge, 0 otherwise (1 is left to the
 * sanitizers' reports). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- The allocator, counted ---------------------------------------------- */

static __thread int in_sample; /* depth of sampling handlers on this thread */
static _Atomic uint64_t samples_seen;
static _Atomic uint64_t allocations_in_sample;
static _Atomic uint64_t allocations_total;
#define CALLERS_KEPT 32
static void *_Atomic callers[CALLERS_KEPT];
static const char *_Atomic caller_what[CALLERS_KEPT];

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_alloc_fn)(size_t, size_t);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static posix_memalign_fn real_posix_memalign;
static aligned_alloc_fn real_aligned_alloc;
static aligned_alloc_fn real_memalign;

/* dlsym may allocate (calloc) before the real functions are known: those
 * few bytes come from here and are never freed. */
static _Alignas(16) uint8_t bootstrap[65536];
static _Atomic size_t bootstrap_used;
static __thread bool resolving;

static void *bootstrap_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    size_t at = atomic_fetch_add(&bootstrap_used, size);
    if (at + size > sizeof bootstrap)
        abort();
    return bootstrap + at;
}

static bool from_bootstrap(const void *p)
{
    return (const uint8_t *)p >= bootstrap && (const uint8_t *)p < bootstrap + sizeof bootstrap;
}

static void resolve(void)
{
    if (real_malloc || resolving)
        return;
    resolving = true;
    real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
    real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
    real_free = (free_fn)dlsym(RTLD_NEXT, "free");
    real_posix_memalign = (posix_memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (aligned_alloc_fn)dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = (aligned_alloc_fn)dlsym(RTLD_NEXT, "memalign");
    real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
    resolving = false;
}

/* Async-signal-safe: atomics and a thread-local only. */
static void note(void *caller, const char *what)
{
    atomic_fetch_add_explicit(&allocations_total, 1, memory_order_relaxed);
    if (!in_sample)
        return;
    uint64_t n = atomic_fetch_add(&allocations_in_sample, 1);
    if (n < CALLERS_KEPT) {
        callers[n] = caller;
        caller_what[n] = what;
    }
}

void *malloc(size_t size)
{
    note(__builtin_return_address(0), "malloc");
    resolve();
    if (!real_malloc)
        return bootstrap_alloc(size);
    return real_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    note(__builtin_return_address(0), "calloc");
    resolve();
    if (!real_calloc) {
        size_t total;
        if (__builtin_mul_overflow(count, size, &total))
            return NULL;
        return bootstrap_alloc(total); /* static memory is zeroed */
    }
    return real_calloc(count, size);
}

void *realloc(void *old, size_t size)
{
    note(__builtin_return_address(0), "realloc");
    resolve();
    if (from_bootstrap(old)) {
        void *bigger = malloc(size);
        size_t available = (size_t)(bootstrap + sizeof bootstrap - (uint8_t *)old);
        if (bigger)
            memcpy(bigger, old, size < available ? size : available);
        return bigger;
    }
    return real_realloc(old, size);
}

void free(void *p)
{
    note(__builtin_return_address(0), "free");
    if (!p || from_bootstrap(p))
        return;
    resolve();
    real_free(p);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    note(__builtin_return_address(0), "posix_memalign");
    resolve();
    return real_posix_memalign(out, alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    note(__builtin_return_address(0), "aligned_alloc");
    resolve();
    return real_aligned_alloc(alignment, size);
}

void *memalign(size_t alignment, size_t size); /* glibc's malloc.h, obsolete */
void *memalign(size_t alignment, size_t size)
{
    note(__builtin_return_address(0), "memalign");
    resolve();
    return real_memalign(alignment, size);
}

/* --- The handler, wrapped ------------------------------------------------- */

static struct sigaction profiler_action;

static bool is_sample(const siginfo_t *info)
{
    /* perf_event signals carry POLL_*; POSIX CPU-time timers SI_TIMER. */
    return info->si_code == SI_TIMER || (info->si_code >= POLL_IN && info->si_code <= POLL_HUP);
}

static void marking_handler(int signal_number, siginfo_t *info, void *context)
{
    bool sample = is_sample(info);
    if (sample) {
        in_sample++;
        atomic_fetch_add_explicit(&samples_seen, 1, memory_order_relaxed);
    }
    profiler_action.sa_sigaction(signal_number, info, context);
    if (sample)
        in_sample--;
}

/* libsprof.so interposes sigaction to show the program its own view, so
 * the handler really installed is read and replaced with libc's. */
static int wrap_handler(int signal_number)
{
    typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    sigaction_fn libc_sigaction = libc ? (sigaction_fn)dlsym(libc, "sigaction") : NULL;
    if (!libc_sigaction)
        return -1;
    if (libc_sigaction(signal_number, NULL, &profiler_action) != 0)
        return -1;
    if (!(profiler_action.sa_flags & SA_SIGINFO) || !profiler_action.sa_sigaction)
        return -1;
    struct sigaction wrapper = profiler_action;
    wrapper.sa_sigaction = marking_handler;
    return libc_sigaction(signal_number, &wrapper, NULL);
}

/* --- The work ------------------------------------------------------------- */

static volatile uint64_t sink;
static volatile bool stop;

__attribute__((noinline)) static uint64_t spin(uint64_t n)
{
    uint64_t x = n;
    for (uint64_t i = 0; i < 20000; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink += x;
    return x;
}

/* Recursion of a varying depth: many distinct stacks, some deep. */
__attribute__((noinline)) static uint64_t descend(unsigned depth, uint64_t n)
{
    if (depth == 0)
        return spin(n);
    uint64_t r = descend(depth - 1, n + depth);
    sink += r;
    return r + 1;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!stop) {
        seed = seed * 1103515245u + 12345u;
        descend(seed % 300, seed);
        if (seed % 64 == 0) {
            /* Asleep for a moment: other threads' handlers write it out. */
            struct timespec nap = {0, 3000000};
            nanosleep(&nap, NULL);
        }
    }
    return NULL;
}

static void *short_lived(void *arg)
{
    for (int i = 0; i < 20; i++)
        descend(((unsigned)(uintptr_t)arg + (unsigned)i) % 50, (uint64_t)i);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_callers(void)
{
    uint64_t count = atomic_load(&allocations_in_sample);
    for (uint64_t i = 0; i < count && i < CALLERS_KEPT; i++) {
        bool seen = false;
        for (uint64_t k = 0; k < i; k++)
            seen |= callers[k] == callers[i];
        if (seen)
            continue;
        Dl_info where;
        memset(&where, 0, sizeof where);
        dladdr(callers[i], &where);
        fprintf(stderr, "  %s from %p: %s (%s)\n", caller_what[i], callers[i],
                where.dli_sname ? where.dli_sname : "?", where.dli_fname ? where.dli_fname : "?");
    }
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    const char *signal_name = getenv("SPROF_SIGNAL");
    int signal_number = SIGPROF;
    if (signal_name && strcmp(signal_name, "PROF") != 0) {
        fprintf(stderr, "nomalloc: run it with the default signal (PROF)\n");
        return 2;
    }
    if (wrap_handler(signal_number) != 0) {
        fprintf(stderr,
                "nomalloc: no SA_SIGINFO handler for SIGPROF: not run under libsprof.so?\n");
        return 2;
    }

    enum { WORKERS = 3 };
    pthread_t threads[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++) {
        if (pthread_create(&threads[i], NULL, worker, (void *)(i + 1)) != 0) {
            fprintf(stderr, "nomalloc: pthread_create: %s\n", strerror(errno));
            return 2;
        }
    }
    double end = now() + seconds;
    unsigned round = 0;
    while (now() < end) {
        /* The main thread works too, starts threads that end at once (their
         * states are reused), and loads code the unwinder has not seen. */
        descend(round % 200, round);
        pthread_t brief;
        if (pthread_create(&brief, NULL, short_lived, (void *)(uintptr_t)round) == 0)
            pthread_join(brief, NULL);
        if (round % 8 == 0) {
            void *library = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
            if (library) {
                double (*cosine)(double) = (double (*)(double))dlsym(library, "cos");
                if (cosine)
                    sink += (uint64_t)(cosine((double)round) * 10);
                dlclose(library);
            }
        }
        round++;
    }
    stop = true;
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);

    uint64_t samples = atomic_load(&samples_seen);
    uint64_t inside = atomic_load(&allocations_in_sample);
    printf("nomalloc: %llu samples, %llu allocator calls in them (%llu in all)\n",
           (unsigned long long)samples, (unsigned long long)inside,
           (unsigned long long)atomic_load(&allocations_total));
    fflush(stdout);
    if (inside > 0) {
        fprintf(stderr, "nomalloc: the sampling handler called the allocator:\n");
        print_callers();
        return 3;
    }
    if (samples < 100) {
        fprintf(stderr, "nomalloc: only %llu samples: too few to judge\n",
                (unsigned long long)samples);
        return 2;
    }
    return 0;
}
