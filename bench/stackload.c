/* stackload: a CPU-bound workload at a chosen stack depth, for the
 * benchmark harness (bench/bench.py).
 *
 *   stackload FRAMES THREADS ITERATIONS CHUNK OUTFILE [PHASE_CHUNKS]
 *
 * Each of THREADS threads (the main thread itself when THREADS is 1)
 * recurses until its stack is about FRAMES frames deep, counting the
 * frames libc puts below main, then spins through its share of ITERATIONS
 * steps of an integer recurrence, in chunks of CHUNK steps. The work is
 * fixed, so the CPU time it takes without a profiler is the same in every
 * run, and what a profiler adds shows as extra CPU time.
 *
 * It writes two lines to OUTFILE:
 *   work_cpu_s total_cpu_s wall_s chunks median_chunk_s checksum
 *   chunk_s chunk_s ...   (every chunk's thread CPU time, in the order run,
 *                          thread by thread)
 * work_cpu_s is the process's CPU time (all threads, user + system) from
 * just before the work to just after it, so the profiler's start-up and exit
 * are not in it; total_cpu_s is the process's CPU time from exec to the end
 * of the work. median_chunk_s is the median of the chunks' thread CPU times:
 * on a shared virtual machine the CPU is now and then much slower for a
 * while (its neighbours), which throws whole-run times about; the median
 * chunk is not moved by such episodes.
 *
 * With PHASE_CHUNKS (one thread only), the work runs in phases of that many
 * chunks, alternately with SIGPROF blocked and unblocked, and a third line
 * gives each pair's CPU seconds: open_s closed_s open_s closed_s ... The
 * signal is blocked from the start of main, so a profiler driven by SIGPROF
 * (gperftools) takes its samples only in the open phases, a pending one at
 * the phase's first instruction; each phase's time includes its change of
 * mask. Each pair is a measurement of the signal's whole cost in one
 * process, free of the drift between runs: a profiler that samples at the
 * tick's rate takes too few samples for runs to be told apart. */
#include <signal.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Frames below the recursion: _start, __libc_start_main,
 * __libc_start_call_main, main and run_work in the main thread; clone3,
 * start_thread, a preload's start wrapper and thread_main in others. */
#define FRAMES_BELOW 5
#define MAX_THREADS 64

struct job {
    int depth;
    uint64_t iterations;
    uint64_t chunk;
    double *chunk_seconds; /* one per chunk */
    size_t chunks;
    uint64_t phase_chunks;  /* 0: no phases */
    double *phase_seconds;  /* open, closed, open, closed, ... */
    size_t phases;
    uint64_t result;
};

static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t spin_chunk(struct job *job, uint64_t n, uint64_t x)
{
    double start = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        x ^= x >> 29;
    }
    if (n == job->chunk) /* a short last chunk would skew the median */
        job->chunk_seconds[job->chunks++] = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - start;
    return x;
}

/* Pairs of phases, SIGPROF open then closed, or closed then open (every
 * other pair), so neither always runs first. */
static uint64_t spin_phases(struct job *job, uint64_t x)
{
    sigset_t profiling;
    sigemptyset(&profiling);
    sigaddset(&profiling, SIGPROF);
    uint64_t phase_work = job->chunk * job->phase_chunks;
    for (uint64_t pair = 0; job->iterations >= 2 * phase_work * (pair + 1); pair++) {
        for (int half = 0; half < 2; half++) {
            bool open = (pair + (uint64_t)half) % 2 == 0;
            double start = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
            sigprocmask(open ? SIG_UNBLOCK : SIG_BLOCK, &profiling, NULL);
            for (uint64_t c = 0; c < job->phase_chunks; c++)
                x = spin_chunk(job, job->chunk, x);
            sigprocmask(SIG_BLOCK, &profiling, NULL);
            job->phase_seconds[2 * pair + !open] = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - start;
        }
        job->phases += 2;
    }
    return x;
}

__attribute__((noinline)) static uint64_t spin(struct job *job)
{
    uint64_t x = 88172645463325252ull;
    if (job->phase_chunks)
        return spin_phases(job, x);
    uint64_t left = job->iterations;
    while (left > 0) {
        uint64_t n = left < job->chunk ? left : job->chunk;
        x = spin_chunk(job, n, x);
        left -= n;
    }
    return x;
}

/* Not a tail call: the empty asm uses the result after the call returns,
 * so every level keeps its frame. */
__attribute__((noinline)) static uint64_t descend(int depth, struct job *job)
{
    uint64_t r = depth <= 1 ? spin(job) : descend(depth - 1, job);
    __asm__ volatile("" : "+r"(r));
    return r + (uint64_t)depth;
}

static void *thread_main(void *arg)
{
    struct job *job = arg;
    job->result = descend(job->depth, job);
    return NULL;
}

__attribute__((noinline)) static uint64_t run_work(struct job *jobs, int threads)
{
    if (threads == 1) {
        uint64_t r = descend(jobs[0].depth, &jobs[0]);
        __asm__ volatile("" : "+r"(r));
        return r;
    }
    pthread_t ids[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&ids[i], NULL, thread_main, &jobs[i]) != 0) {
            perror("stackload: pthread_create");
            exit(2);
        }
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        sum += jobs[i].result;
    }
    return sum;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: stackload FRAMES THREADS ITERATIONS CHUNK OUTFILE [PHASE_CHUNKS]\n");
        return 2;
    }
    int frames = atoi(argv[1]);
    int threads = atoi(argv[2]);
    uint64_t iterations = strtoull(argv[3], NULL, 10);
    uint64_t chunk = strtoull(argv[4], NULL, 10);
    uint64_t phase_chunks = argc == 7 ? strtoull(argv[6], NULL, 10) : 0;
    if (frames < FRAMES_BELOW + 2 || frames > 2000 || threads < 1 || threads > MAX_THREADS ||
        chunk < 1) {
        fprintf(stderr, "stackload: FRAMES must be %d..2000, THREADS 1..%d, CHUNK >= 1\n",
                FRAMES_BELOW + 2, MAX_THREADS);
        return 2;
    }
    if (phase_chunks && threads != 1) {
        fprintf(stderr, "stackload: PHASE_CHUNKS needs THREADS 1\n");
        return 2;
    }
    if (phase_chunks) {
        sigset_t profiling;
        sigemptyset(&profiling);
        sigaddset(&profiling, SIGPROF);
        sigprocmask(SIG_BLOCK, &profiling, NULL);
    }
    /* The recursion adds depth frames of descend and one of spin. */
    int depth = frames - FRAMES_BELOW - 1;
    struct job jobs[MAX_THREADS];
    size_t all_chunks = 0;
    for (int i = 0; i < threads; i++) {
        uint64_t share = iterations / (uint64_t)threads;
        jobs[i] = (struct job){.depth = depth, .iterations = share, .chunk = chunk,
                               .phase_chunks = phase_chunks};
        jobs[i].phase_seconds = phase_chunks ? calloc(share / chunk + 2, sizeof(double)) : NULL;
        jobs[i].chunk_seconds = malloc(sizeof(double) * (share / chunk + 1));
        if (!jobs[i].chunk_seconds || (phase_chunks && !jobs[i].phase_seconds)) {
            perror("stackload: malloc");
            return 2;
        }
        /* Touch the pages now, not during the work. */
        for (uint64_t c = 0; c <= share / chunk; c++)
            jobs[i].chunk_seconds[c] = 0;
    }
    double cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID), wall0 = clock_seconds(CLOCK_MONOTONIC);
    uint64_t checksum = run_work(jobs, threads);
    double cpu1 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID), wall1 = clock_seconds(CLOCK_MONOTONIC);

    for (int i = 0; i < threads; i++)
        all_chunks += jobs[i].chunks;
    double *merged = malloc(sizeof(double) * (all_chunks + 1));
    if (!merged) {
        perror("stackload: malloc");
        return 2;
    }
    size_t n = 0;
    for (int i = 0; i < threads; i++) {
        for (size_t c = 0; c < jobs[i].chunks; c++)
            merged[n++] = jobs[i].chunk_seconds[c];
    }
    double *sorted = malloc(sizeof(double) * (n + 1));
    if (!sorted) {
        perror("stackload: malloc");
        return 2;
    }
    memcpy(sorted, merged, sizeof(double) * n);
    qsort(sorted, n, sizeof(double), compare_doubles);
    double median = n ? (n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2) : 0;

    FILE *out = fopen(argv[5], "w");
    if (!out) {
        perror(argv[5]);
        return 2;
    }
    fprintf(out, "%.6f %.6f %.6f %zu %.9f %llu\n", cpu1 - cpu0, cpu1, wall1 - wall0, n, median,
            (unsigned long long)(checksum & 0xffff));
    /* In the order run: a profiler that takes few samples a chunk is
     * measured on runs of neighbouring chunks (bench.py, grouped_cost). */
    for (size_t c = 0; c < n; c++)
        fprintf(out, "%.9f%c", merged[c], c + 1 == n ? '\n' : ' ');
    if (n == 0)
        fputc('\n', out);
    for (size_t p = 0; p < jobs[0].phases; p++)
        fprintf(out, "%.9f%c", jobs[0].phase_seconds[p], p + 1 == jobs[0].phases ? '\n' : ' ');
    return fclose(out) == 0 ? 0 : 2;
}
