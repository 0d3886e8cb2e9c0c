/* Fuzz target: any bytes, read as a trace by the analyzer's own code path.
 *
 * The bytes go to a memory file, which profile_load_file reads by its
 * /proc/self/fd path as sprof-analyze reads a trace; then every report is
 * printed to /dev/null (each sort key, table and CSV, threads, summary,
 * callers and callees of every function),
 * and the figures are checked against what must hold whatever the input:
 * a function's cumulative samples are at least its self samples and at most
 * the total, rows come out in the order asked for, and the figures computed
 * on the path tree (a load without stacks) are those computed stack by
 * stack. A broken invariant traps, so the fuzzer keeps the input.
 *
 * Built two ways (test/fuzz/meson.build): with clang's libFuzzer, and as a
 * plain program (replay_main.c) that runs saved inputs through this same
 * function with the project's compiler. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "profile.h"
#include "report.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int trace_fd = -1;
static char trace_path[64];
static FILE *sink;

#define CHECK(condition)                                                                           \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "fuzz_trace: invariant broken: %s (%s:%d)\n", #condition, __FILE__,    \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* A trace names modules; their separate debug info must never be
     * looked for on a network while fuzzing. */
    unsetenv("DEBUGINFOD_URLS");
    trace_fd = memfd_create("sprof-fuzz-trace", MFD_CLOEXEC);
    if (trace_fd < 0) {
        FILE *file = tmpfile();
        if (file)
            trace_fd = dup(fileno(file));
    }
    if (trace_fd < 0) {
        perror("fuzz_trace: no memory file or temporary file");
        exit(1);
    }
    snprintf(trace_path, sizeof trace_path, "/proc/self/fd/%d", trace_fd);
    sink = fopen("/dev/null", "we");
    if (!sink) {
        perror("fuzz_trace: /dev/null");
        exit(1);
    }
    return 0;
}

static void put_trace(const uint8_t *data, size_t size)
{
    if (ftruncate(trace_fd, 0) != 0) {
        perror("fuzz_trace: ftruncate");
        exit(1);
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(trace_fd, data + done, size - done, (off_t)done);
        if (n <= 0) {
            perror("fuzz_trace: pwrite");
            exit(1);
        }
        done += (size_t)n;
    }
}

static void check_order(const struct profile *p, const struct function_stats *stats, size_t count,
                        enum sort_key key)
{
    for (size_t i = 1; i < count; i++) {
        const struct function_stats *a = &stats[i - 1], *b = &stats[i];
        switch (key) {
        case SORT_CUMULATIVE:
            CHECK(a->cumulative_weight_ns >= b->cumulative_weight_ns);
            break;
        case SORT_SELF:
            CHECK(a->self_weight_ns >= b->self_weight_ns);
            break;
        case SORT_SAMPLES:
            CHECK(a->self_samples >= b->self_samples);
            break;
        case SORT_NAME:
            CHECK(strcmp(sprof_string_table_get(&p->strings, p->functions[a->function].name),
                         sprof_string_table_get(&p->strings, p->functions[b->function].name)) <= 0);
            break;
        }
    }
}

static void check_stats(const struct profile *p, const struct function_stats *stats, size_t count)
{
    uint64_t self_total = 0;
    CHECK(count <= p->function_count);
    for (size_t i = 0; i < count; i++) {
        const struct function_stats *st = &stats[i];
        CHECK(st->function < p->function_count);
        /* Listed for its samples, or for exact calls with none. */
        CHECK(st->cumulative_samples > 0 || st->calls > 0);
        CHECK(st->cumulative_samples >= st->self_samples);
        CHECK(st->cumulative_samples <= p->total_samples);
        self_total += st->self_samples;
    }
    CHECK(self_total <= p->total_samples);
    uint64_t thread_total = 0;
    for (size_t i = 0; i < p->thread_count; i++) {
        CHECK(p->threads[i].process < p->process_count);
        thread_total += p->threads[i].samples;
    }
    CHECK(thread_total == p->total_samples);
}

static void print_every_report(const struct profile *p)
{
    static const enum sort_key keys[] = {SORT_CUMULATIVE, SORT_SELF, SORT_SAMPLES, SORT_NAME};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        size_t count = 0;
        struct function_stats *stats = compute_function_stats(p, keys[k], &count);
        CHECK(stats != NULL || count == 0);
        check_stats(p, stats, count);
        check_order(p, stats, count, keys[k]);
        struct report_options all = {.sort = keys[k], .limit = 0};
        struct report_options few = {.sort = keys[k], .limit = 3};
        print_table(sink, p, stats, count, &all);
        print_csv(sink, p, stats, count, &all);
        if (k == 0) {
            print_table(sink, p, stats, count, &few);
            print_csv(sink, p, stats, count, &few);
        }
        free(stats);
    }
    print_threads_table(sink, p);
    print_threads_csv(sink, p);
    print_summary(sink, p, false);
    print_summary(sink, p, true);
    print_folded(sink, p);
    char pprof_error[256];
    CHECK(print_pprof(sink, p, pprof_error, sizeof pprof_error));
    CHECK(print_callgrind(sink, p, pprof_error, sizeof pprof_error));
    /* --callers and --callees for every function, table and CSV. */
    char error[256];
    for (int callees = 0; callees < 2; callees++) {
        for (int csv = 0; csv < 2; csv++)
            CHECK(print_callers(sink, p, "^", callees, csv, error, sizeof error));
    }
    fflush(sink);
}

/* A profile loaded without stacks has its figures from one walk of the
 * trace's path tree; they must be those computed stack by stack. */
static void check_same_figures(const struct profile *with_stacks, const char *path)
{
    struct profile figures;
    profile_init(&figures);
    figures.without_stacks = true;
    char error[512], warning[512];
    int records = profile_load_file(&figures, path, error, sizeof error, warning, sizeof warning);
    CHECK(records >= 0);
    CHECK(figures.total_samples == with_stacks->total_samples);
    CHECK(figures.total_weight_ns == with_stacks->total_weight_ns);
    CHECK(figures.thread_count == with_stacks->thread_count);
    CHECK(figures.function_count == with_stacks->function_count);
    size_t count = 0, expected_count = 0;
    struct function_stats *stats = compute_function_stats(&figures, SORT_NAME, &count);
    struct function_stats *expected =
        compute_function_stats(with_stacks, SORT_NAME, &expected_count);
    CHECK(count == expected_count);
    for (size_t i = 0; i < count; i++) {
        const struct function_stats *a = &stats[i], *b = &expected[i];
        CHECK(a->function == b->function);
        CHECK(a->self_samples == b->self_samples && a->self_weight_ns == b->self_weight_ns);
        CHECK(a->cumulative_samples == b->cumulative_samples &&
              a->cumulative_weight_ns == b->cumulative_weight_ns);
        CHECK(a->root_distance == b->root_distance);
    }
    free(stats);
    free(expected);
    profile_free(&figures);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (trace_fd < 0)
        LLVMFuzzerInitialize(NULL, NULL);
    put_trace(data, size);

    struct profile profile;
    profile_init(&profile);
    char error[512], warning[512];
    int records =
        profile_load_file(&profile, trace_path, error, sizeof error, warning, sizeof warning);
    CHECK(records < 0 || profile.process_count == 1);
    if (records >= 0)
        check_same_figures(&profile, trace_path);
    /* Merging: sprof-analyze loads several traces into one profile. An odd
     * last byte loads this one a second time, which must double the counts. */
    if (records >= 0 && size > 0 && (data[size - 1] & 1)) {
        uint64_t once = profile.total_samples;
        if (profile_load_file(&profile, trace_path, error, sizeof error, warning, sizeof warning) >=
            0)
            CHECK(profile.total_samples == 2 * once);
    }
    uint64_t run_id;
    bool is_root;
    uint32_t pid;
    trace_run_identity(trace_path, &run_id, &is_root, &pid);
    /* As sprof-analyze: reports only when a trace was loaded. */
    if (profile.process_count > 0)
        print_every_report(&profile);
    profile_free(&profile);
    return 0;
}
