/* The analyzer's model of one or more traces: functions, logical stacks
 * (addresses already expanded into functions, inlined frames included) with
 * their samples, threads and processes. Not thread-safe; uses malloc. */
#ifndef SPROF_PROFILE_H
#define SPROF_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "string_table.h"

struct function {
    uint32_t name;     /* string: display name (demangled) */
    uint32_t location; /* string: "file:line", or the module's name */
    uint32_t module;   /* string: module path */
    uint64_t calls;    /* exact calls, from -finstrument-functions hooks */
    uint64_t primitive_calls; /* of those, calls not made while it was active */
    /* Sampled figures of the frame tables loaded without stacks (see
     * profile.without_stacks); compute_function_stats adds those of stacks. */
    uint64_t self_samples, self_weight_ns;
    uint64_t cumulative_samples, cumulative_weight_ns;
    uint32_t root_distance; /* fewest frames from a stack's root; UINT32_MAX: none */
};

/* Exact calls from one function to another. */
struct call_edge {
    uint32_t caller, callee; /* functions */
    uint64_t calls;
};

/* A stack as functions, leaf first, and its samples on every thread. */
struct logical_stack {
    uint32_t first_frame; /* into profile.frames */
    uint32_t depth;
    bool truncated;
    uint64_t samples;
    uint64_t weight_ns;
};

struct thread_info {
    uint32_t process; /* into profile.processes */
    uint32_t tid;
    uint32_t name;    /* string */
    uint64_t cpu_ns;  /* measured, 0 if unknown */
    uint64_t samples;
    uint64_t weight_ns;
};

struct process_info {
    uint32_t pid, ppid;
    uint32_t frequency_hz;
    uint32_t timer_kind;
    uint64_t period_ns;
    uint32_t max_depth;
    uint32_t flags;
    uint32_t executable; /* string */
    uint32_t command;    /* string: arguments joined by spaces */
    uint32_t warnings;   /* string */
    bool has_process_record;
    bool has_summary;
    bool ended_cleanly;  /* END record seen */
    uint64_t wall_ns, user_ns, system_ns, profiler_cpu_ns, max_rss_kb;
    uint64_t summary_samples, summary_weight_ns, lost, truncated;
    uint32_t summary_threads;
    bool symbolized_here; /* the analyzer had to name addresses itself */
};

struct profile {
    /* Set before loading when no view will list stacks (folded, callers):
     * frame tables then go straight into the functions' sampled figures,
     * and stacks hold only version 1's STACK records. */
    bool without_stacks;
    struct sprof_string_table strings;
    struct function *functions;
    size_t function_count, function_capacity;
    struct sprof_map function_by_key; /* string id of key -> function index */

    uint32_t *frames; /* function indexes of all logical stacks */
    size_t frame_count, frame_capacity;
    struct logical_stack *stacks;
    size_t stack_count, stack_capacity;
    struct thread_info *threads;
    size_t thread_count, thread_capacity;
    struct process_info *processes;
    size_t process_count, process_capacity;
    struct call_edge *edges;
    size_t edge_count, edge_capacity;
    struct sprof_map edge_by_pair; /* caller << 32 | callee -> edge index */
    bool has_call_counts;
    uint64_t dropped_calls; /* hook calls the traces could not count */
    char **notices; /* distinct notices from all traces */
    size_t notice_count;
    uint64_t total_samples;
    uint64_t total_weight_ns;
    /* libdw's readers of the module files traces name addresses in, one a
     * file, shared by every trace loaded (a run's processes share their
     * libraries: each file is read once). */
    struct module_namer *namers;
    size_t namer_count, namer_capacity;
};

void profile_init(struct profile *profile);
void profile_free(struct profile *profile);

/* Loads one trace file into profile. Returns the number of usable records
 * read (>= 0) or -1 when the file cannot be read as a trace at all; then
 * error holds one line. A trace that stops early (cut off, corrupt record)
 * is loaded up to that point and warning holds one line. */
int profile_load_file(struct profile *profile, const char *path, char *error,
                      size_t error_size, char *warning, size_t warning_size);

/* Run id, root flag and pid of a trace file, read from its start. */
bool trace_run_identity(const char *path, uint64_t *run_id, bool *is_root, uint32_t *pid);

#endif
