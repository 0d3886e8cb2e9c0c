/* Process-wide profiler state and the pieces that share it.
 * Nothing here is async-signal-safe; the handler sees only sample_handler.h. */
#ifndef SPROF_PROFILER_H
#define SPROF_PROFILER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "module_list.h"
#include "sampling_timer.h"
#include "settings.h"
#include "stack_table.h"
#include "thread_state.h"
#include "trace_codec.h"

#define SPROF_EXPORT __attribute__((visibility("default")))

struct sprof_profiler {
    _Atomic bool active;      /* sampling and writing; false once stopped */
    bool root;                /* the first process of the run */
    struct sprof_settings settings;
    struct sprof_timer_plan plan;
    uint64_t period_ns;
    uint64_t run_id;
    char trace_path[4200];
    uint64_t start_monotonic_ns;
    pthread_key_t thread_key; /* its destructor ends a thread's sampling */
    bool stderr_line_printed; /* at most one line per process, ever */
};
extern struct sprof_profiler sprof;

/* Thread registry (thread_registry.c). The lock guards the list only. */
extern pthread_mutex_t sprof_registry_lock;
extern struct sprof_thread *sprof_registry;
/* Starts sampling the calling thread. Returns its state or NULL. */
struct sprof_thread *sprof_thread_begin(void);
/* Stops sampling the calling thread and hands its state to the writer. */
void sprof_thread_end(struct sprof_thread *t);
/* The real pthread_create, found with dlsym(RTLD_NEXT). */
int sprof_real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                              void *(*start)(void *), void *arg);
/* After fork, in the child: forget every thread but the calling one. */
void sprof_registry_after_fork_child(void);
/* The CPU time a thread of this process has used, by tid; 0 if unknown. */
uint64_t sprof_thread_cpu_ns(pid_t tid);

/* Trace writer (trace_writer.c). */
/* Creates the trace file and writes its header, PROCESS record and
 * modules. Returns 0 or an errno value. */
int sprof_writer_open(const char *path, const char *settings_warnings);
/* Starts the writer thread, which flushes samples every few tens of ms. */
int sprof_writer_start(void);
/* Stops sampling everywhere, stops the writer thread, writes the last
 * samples, the threads, the summary and the symbols, and closes the trace.
 * Returns the number of samples written. */
uint64_t sprof_writer_finish(uint64_t *weight_ns);
/* fork handlers. */
void sprof_writer_before_fork(void);
void sprof_writer_after_fork_parent(void);
/* In the child: drops the parent's pending data and closes its trace. */
void sprof_writer_after_fork_child(void);

/* Exit-time symbolization (exit_symbolize.c): appends STRING and SYMBOL
 * records for every address in stacks. */
void sprof_symbolize_addresses(const struct sprof_stack_table *stacks,
                               const struct sprof_module_list *modules,
                               struct sprof_encoder *enc);

uint64_t sprof_monotonic_ns(void);

#endif
