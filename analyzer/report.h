/* Per-function statistics and the reports printed from them. */
#ifndef SPROF_REPORT_H
#define SPROF_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "profile.h"

enum sort_key { SORT_CUMULATIVE, SORT_SELF, SORT_SAMPLES, SORT_NAME };

struct function_stats {
    uint32_t function;
    uint64_t self_samples, self_weight_ns;
    uint64_t cumulative_samples, cumulative_weight_ns;
    uint32_t root_distance; /* fewest frames between it and a stack's root */
    uint64_t calls, primitive_calls; /* exact, when the trace has call counts */
};

/* Computes stats for every function with samples, sorted by key. A function
 * counts at most once per sample in its cumulative figures, however often
 * it recurses. Ties go to the function nearer the root (callers before
 * their callees), then by name. Returns a malloc'd array of *count entries (NULL if none). */
struct function_stats *compute_function_stats(const struct profile *profile, enum sort_key key,
                                              size_t *count);

struct report_options {
    enum sort_key sort;
    size_t limit; /* rows; 0 means all */
    const char *title;
};

void print_table(FILE *out, const struct profile *profile, const struct function_stats *stats,
                 size_t count, const struct report_options *options);
void print_csv(FILE *out, const struct profile *profile, const struct function_stats *stats,
               size_t count, const struct report_options *options);
/* Folded stacks (FlameGraph, speedscope): "root;...;leaf samples" per
 * distinct stack. */
void print_folded(FILE *out, const struct profile *profile);
/* pprof's profile.proto, gzipped: samples and CPU nanoseconds per distinct
 * stack. Returns false with error set to one line when it cannot. */
bool print_pprof(FILE *out, const struct profile *profile, char *error, size_t error_size);
/* Callgrind's format (KCachegrind, callgrind_annotate): self and call costs
 * per function, samples and CPU nanoseconds. Returns false with error set
 * to one line when it cannot. */
bool print_callgrind(FILE *out, const struct profile *profile, char *error, size_t error_size);
/* Figures of the whole run, over every process loaded. */
struct run_totals {
    size_t processes;                /* distinct pids: images after an exec are one */
    size_t summarized, unsummarized; /* images with and without a SUMMARY */
    size_t threads;                  /* threads with samples */
    uint64_t user_ns, system_ns, wall_ns, max_rss_kb, lost, truncated;
    uint64_t unsampled_system_ns;    /* system time of processes that could not sample it */
    uint64_t summarized_weight_ns;   /* sampled time in processes with a SUMMARY */
};
void compute_run_totals(const struct profile *profile, struct run_totals *totals);
const char *timer_description(const struct process_info *process);
/* key,value rows of the run's figures, for scripts (or aligned text). */
void print_summary(FILE *out, const struct profile *profile, bool csv);
/* Indexes of profile->threads ordered by pid, then tid (malloc'd). */
size_t *threads_in_order(const struct profile *profile);
void print_threads_table(FILE *out, const struct profile *profile);
void print_threads_csv(FILE *out, const struct profile *profile);

/* pstats' print_callers and print_callees: for each function whose name
 * matches pattern (POSIX extended regex), the functions that call it (or
 * that it calls), the time each contributes, its share, and exact calls
 * where the trace has call counts. Returns false if the pattern is bad
 * (error set to one line). */
bool print_callers(FILE *out, const struct profile *profile, const char *pattern, bool callees,
                   bool csv, char *error, size_t error_size);

/* pstats-style call count: "total/primitive" when they differ. */
void format_calls(char *text, size_t size, uint64_t calls, uint64_t primitive);

/* A function's location "file.c:42" -> 42, *file_length that of "file.c";
 * 0 (and the whole length) when it is a module's name instead. */
uint64_t location_line(const char *location, size_t *file_length);

/* One CSV field, always quoted (RFC 4180). */
void put_csv_field(FILE *out, const char *text);

/* Writes text with control characters (terminal escapes included) shown as
 * '?', so a hostile name cannot drive the terminal. */
void put_sanitized(FILE *out, const char *text, int width, int precision);

#endif
