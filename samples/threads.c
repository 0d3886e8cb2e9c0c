/* threads: the course's Solution 3 (ThreadPoolExecutor), in C.
 *
 * Computes fib(first)..fib(last) (default 35..38)
 *   --mode slow  one after another on the main thread;
 *   --mode fast  in a pool of worker threads ("fib-worker-0", ...) that pull
 *                tasks from a shared queue guarded by a mutex;
 *   --mode both  both, checking that they agree (default).
 * with --fn naive (default: the exponential recursion, CPU-bound) or
 * --fn memo (the seed's own pairing: the LRU-memoized function called from
 * the pool, all threads sharing one cache; see fib_core.c and
 * README-samples.md for how the cache is protected).
 *
 * Unlike CPython, whose GIL lets one thread run Python code at a time, C
 * threads run CPU-bound work in parallel: the pool's wall time drops while
 * its CPU time stays about the same.
 *
 * A failing task is not lost: its worker stops and returns an error status,
 * which the main thread prints, naming the worker and the task, and the exit
 * status is 1. --fail N makes the task fib(N) fail on purpose.
 *
 * Exit status: 0 ok, 1 invalid input, usage, or a task failed; 3 the modes
 * disagree (a bug). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fib_core.h"
#include "sample_util.h"

#define PROG "threads"
#define DEFAULT_FIRST 35u
#define DEFAULT_LAST 38u
#define DEFAULT_WORKERS 4u
#define MAX_WORKERS 64u
#define NO_FAILURE (-1)

static const char usage_text[] =
    "Usage: threads [--mode slow|fast|both] [--fn naive|memo] [--first A] [--last B]\n"
    "               [--workers W] [--cache-size K] [--fail N] [--time]\n"
    "Compute fib(A)..fib(B) (default 35..38) serially and/or in a thread pool.\n"
    "\n"
    "  --mode slow      one after another on the main thread\n"
    "  --mode fast      in a pool of W worker threads pulling from a shared queue\n"
    "  --mode both      both, checking that they agree (default)\n"
    "  --fn naive       naive recursion, CPU-bound (default)\n"
    "  --fn memo        LRU-memoized recursion, one cache shared by all threads\n"
    "  --workers W      pool size, 1..64 (default 4)\n"
    "  --cache-size K   LRU cache entries for --fn memo, 0..128 (default 128)\n"
    "  --fail N         make the task fib(N) fail, to show that failures are reported\n"
    "  --time           print wall and CPU time of each phase\n"
    "\n"
    "A and B must be integers 0..93 with A <= B.\n"
    "Exit status: 0 ok, 1 invalid input or a task failed, 3 the modes disagree.\n";

enum fn { FN_NAIVE, FN_MEMO };

struct task {
    unsigned n;
    bool done;
    uint64_t result;
    int worker; /* who computed it, -1 on the main thread */
};

struct pool {
    pthread_mutex_t lock; /* guards next_task and the tasks' done/result/worker */
    struct task *tasks;
    size_t task_count;
    size_t next_task;
    pthread_cond_t go_changed;
    bool go; /* set once all workers exist, so they start pulling together */
    enum fn fn;
    struct fib_cache *cache;
    int fail_n;
};

struct worker {
    pthread_t thread;
    int index;
    char name[16];
    struct pool *pool;
    /* The worker's result, returned through pthread_join. */
    int status; /* 0 ok, else an errno-like code */
    char message[160];
    size_t tasks_done;
    uint64_t fib_calls;
};

/* One task's work. Fails (returns non-zero, fills message) for the injected
 * failure; the function itself cannot fail for a validated n. */
static int compute(enum fn fn, struct fib_cache *cache, unsigned n, int fail_n,
                   uint64_t *result, uint64_t *calls, char *message, size_t message_size)
{
    if (fail_n >= 0 && (unsigned)fail_n == n) {
        snprintf(message, message_size, "fib(%u) failed: injected failure (--fail %u)", n, n);
        return EIO;
    }
    if (fn == FN_NAIVE) {
        uint64_t before = fib_naive_calls;
        *result = fib_naive(n);
        *calls += fib_naive_calls - before;
    } else {
        struct fib_memo_counts counts = {0, 0};
        *result = fib_memo(cache, n, &counts);
        *calls += counts.calls;
    }
    return 0;
}

static void *worker_main(void *data)
{
    struct worker *self = data;
    struct pool *pool = self->pool;
    /* The name shows in top -H, gdb, /proc/<pid>/task/<tid>/comm and in
     * sprof-analyze --threads. At most 15 characters. */
    pthread_setname_np(pthread_self(), self->name);
    pthread_mutex_lock(&pool->lock);
    while (!pool->go)
        pthread_cond_wait(&pool->go_changed, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        struct task *task = NULL;
        if (pool->next_task < pool->task_count)
            task = &pool->tasks[pool->next_task++];
        pthread_mutex_unlock(&pool->lock);
        if (!task)
            break;
        uint64_t result = 0;
        int error = compute(pool->fn, pool->cache, task->n, pool->fail_n, &result,
                            &self->fib_calls, self->message, sizeof self->message);
        if (error) {
            /* Stop this worker and hand the failure to whoever joins it;
             * the other workers go on with the remaining tasks. */
            self->status = error;
            return self;
        }
        pthread_mutex_lock(&pool->lock);
        task->result = result;
        task->done = true;
        task->worker = self->index;
        pthread_mutex_unlock(&pool->lock);
        self->tasks_done++;
    }
    self->status = 0;
    return self;
}

/* Runs the tasks on `workers` threads. Returns the number of failures
 * (each printed), or -1 if the pool could not be started. */
static int run_pool(struct task *tasks, size_t count, unsigned workers, enum fn fn,
                    struct fib_cache *cache, int fail_n, bool verbose)
{
    struct pool pool = {.tasks = tasks, .task_count = count, .fn = fn, .cache = cache,
                        .fail_n = fail_n};
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.go_changed, NULL);
    struct worker *w = calloc(workers, sizeof *w);
    if (!w) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    unsigned started = 0;
    int error = 0;
    for (; started < workers; started++) {
        w[started].index = (int)started;
        w[started].pool = &pool;
        snprintf(w[started].name, sizeof w[started].name, "fib-worker-%u",
                 (unsigned)(unsigned char)started); /* workers <= 64 */
        error = pthread_create(&w[started].thread, NULL, worker_main, &w[started]);
        if (error)
            break;
    }
    pthread_mutex_lock(&pool.lock);
    if (error) {
        fprintf(stderr, PROG ": cannot start worker thread %u: %s\n", started, strerror(error));
        pool.next_task = pool.task_count; /* the workers that did start take nothing */
    }
    pool.go = true;
    pthread_cond_broadcast(&pool.go_changed);
    pthread_mutex_unlock(&pool.lock);
    int failures = 0;
    for (unsigned k = 0; k < started; k++) {
        void *returned = NULL;
        pthread_join(w[k].thread, &returned);
        const struct worker *result = returned;
        if (result && result->status != 0) {
            fprintf(stderr, PROG ": worker %s failed: %s\n", result->name, result->message);
            failures++;
        } else if (verbose) {
            printf("# %s: %zu task%s, %" PRIu64 " fib calls\n", w[k].name, w[k].tasks_done,
                   w[k].tasks_done == 1 ? "" : "s", w[k].fib_calls);
        }
    }
    free(w);
    pthread_cond_destroy(&pool.go_changed);
    pthread_mutex_destroy(&pool.lock);
    return error ? -1 : failures;
}

static bool parse_n(const char *option, const char *text, unsigned *n)
{
    uint64_t value;
    enum parse_status status = parse_u64(text, FIB_MAX_N, &value);
    if (status == PARSE_TOO_LARGE) {
        fprintf(stderr,
                PROG ": invalid %s '%s': too large: fib(n) for n > %u overflows a 64-bit "
                "unsigned integer\n",
                option, text, FIB_MAX_N);
        return false;
    }
    if (status != PARSE_OK)
        return report_parse_error(PROG, option, text, status);
    *n = (unsigned)value;
    return true;
}

int main(int argc, char **argv)
{
    double main_start = monotonic_seconds();
    enum sample_mode mode = MODE_BOTH;
    enum fn fn = FN_NAIVE;
    unsigned first = DEFAULT_FIRST, last = DEFAULT_LAST, workers = DEFAULT_WORKERS;
    uint64_t cache_size = FIB_CACHE_DEFAULT;
    int fail_n = NO_FAILURE;
    bool timing = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        int matched;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(arg, "--time")) {
            timing = true;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--mode", &value)) != 0) {
            if (matched < 0 || !parse_mode(PROG, value, "serial", "pool", &mode))
                return 1;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--fn", &value)) != 0) {
            if (matched < 0)
                return 1;
            if (!strcmp(value, "naive"))
                fn = FN_NAIVE;
            else if (!strcmp(value, "memo"))
                fn = FN_MEMO;
            else {
                fprintf(stderr, PROG ": invalid --fn '%s' (use naive or memo)\n", value);
                return 1;
            }
        } else if ((matched = option_value(argc, argv, &i, PROG, "--first", &value)) != 0) {
            if (matched < 0 || !parse_n("--first", value, &first))
                return 1;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--last", &value)) != 0) {
            if (matched < 0 || !parse_n("--last", value, &last))
                return 1;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--fail", &value)) != 0) {
            unsigned n;
            if (matched < 0 || !parse_n("--fail", value, &n))
                return 1;
            fail_n = (int)n;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--workers", &value)) != 0) {
            uint64_t w;
            if (matched < 0)
                return 1;
            if (parse_u64(value, MAX_WORKERS, &w) != PARSE_OK || w == 0) {
                fprintf(stderr, PROG ": invalid --workers '%s': expected an integer 1..%u\n",
                        value, MAX_WORKERS);
                return 1;
            }
            workers = (unsigned)w;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--cache-size", &value)) !=
                   0) {
            if (matched < 0)
                return 1;
            if (parse_u64(value, FIB_CACHE_MAX, &cache_size) != PARSE_OK) {
                fprintf(stderr, PROG ": invalid --cache-size '%s': expected an integer 0..%u\n",
                        value, FIB_CACHE_MAX);
                return 1;
            }
        } else {
            fprintf(stderr, PROG ": unexpected argument '%s'\nTry 'threads --help'.\n", arg);
            return 1;
        }
    }
    if (first > last) {
        fprintf(stderr, PROG ": invalid range: --first %u is greater than --last %u\n", first,
                last);
        return 1;
    }
    if (fn == FN_NAIVE && last > 45)
        fprintf(stderr,
                PROG ": warning: naive fib(%u) takes a very long time; try --fn memo\n", last);

    size_t count = last - first + 1;
    struct task *serial = calloc(count, sizeof *serial), *pooled = calloc(count, sizeof *pooled);
    if (!serial || !pooled) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < count; k++) {
        serial[k] = (struct task){.n = first + (unsigned)k, .worker = -1};
        pooled[k] = serial[k];
    }
    struct fib_cache cache;
    fib_cache_init(&cache, (unsigned)cache_size);
    const char *fn_name = fn == FN_NAIVE ? "fib_naive" : "fib_memo";
    printf("# fib(%u)..fib(%u) with %s\n", first, last, fn_name);

    int status = 0;
    double serial_wall = 0, serial_cpu = 0, pool_wall = 0, pool_cpu = 0;
    if (mode & MODE_SLOW) {
        double wall = monotonic_seconds(), cpu = process_cpu_seconds();
        uint64_t calls = 0;
        for (size_t k = 0; k < count; k++) {
            char message[160];
            if (compute(fn, &cache, serial[k].n, fail_n, &serial[k].result, &calls, message,
                        sizeof message) != 0) {
                fprintf(stderr, PROG ": serial run failed: %s\n", message);
                status = 1;
                continue;
            }
            serial[k].done = true;
        }
        serial_wall = monotonic_seconds() - wall;
        serial_cpu = process_cpu_seconds() - cpu;
        printf("# serial (main thread), %" PRIu64 " fib calls\n", calls);
        for (size_t k = 0; k < count; k++) {
            if (serial[k].done)
                printf("fib(%u) = %" PRIu64 "\n", serial[k].n, serial[k].result);
        }
    }
    if (mode & MODE_FAST) {
        /* A fresh cache, so the pool does not just read the serial run's. */
        fib_cache_clear(&cache);
        printf("# pool of %u worker thread%s (fib-worker-0..%u)\n", workers,
               workers == 1 ? "" : "s", workers - 1);
        double wall = monotonic_seconds(), cpu = process_cpu_seconds();
        int failures = run_pool(pooled, count, workers, fn, &cache, fail_n, true);
        pool_wall = monotonic_seconds() - wall;
        pool_cpu = process_cpu_seconds() - cpu;
        if (failures != 0)
            status = 1;
        for (size_t k = 0; k < count; k++) {
            if (pooled[k].done)
                printf("fib(%u) = %" PRIu64 "    # by fib-worker-%d\n", pooled[k].n,
                       pooled[k].result, pooled[k].worker);
            else
                fprintf(stderr, PROG ": fib(%u) was not computed\n", pooled[k].n);
        }
        if (failures > 0)
            fprintf(stderr, PROG ": %d worker%s failed; see above\n", failures,
                    failures == 1 ? "" : "s");
    }
    if (mode == MODE_BOTH) {
        for (size_t k = 0; k < count; k++) {
            if (serial[k].done && pooled[k].done && serial[k].result != pooled[k].result) {
                fprintf(stderr, PROG ": BUG: fib(%u) differs between serial and pool\n",
                        serial[k].n);
                status = 3;
            }
        }
    }
    if (timing) {
        if (mode & MODE_SLOW)
            printf("# serial: wall %.3f s, CPU %.3f s\n", serial_wall, serial_cpu);
        if (mode & MODE_FAST)
            printf("# pool:   wall %.3f s, CPU %.3f s (%u workers)\n", pool_wall, pool_cpu,
                   workers);
        if (mode == MODE_BOTH && serial_wall >= 0.001 && pool_wall >= 0.001)
            printf("# pool speedup: %.2fx wall\n", serial_wall / pool_wall);
        else if (mode == MODE_BOTH)
            printf("# pool speedup: not measurable (a run took under a millisecond)\n");
    }
    fib_cache_destroy(&cache);
    free(serial);
    free(pooled);
    if (timing)
        print_main_figures(main_start);
    if (fflush(stdout) != 0) {
        perror(PROG ": stdout");
        return 1;
    }
    return status;
}
