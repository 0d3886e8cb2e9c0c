/* The sampling signal handler and the per-thread sample buffers.
 *
 * Everything in sample_handler.c is ASYNC-SIGNAL-SAFE (see the rules at the
 * top of that file), so the functions declared here may be called from the
 * handler and from normal code alike, except where marked "not signal-safe".
 */
#ifndef SPROF_SAMPLE_HANDLER_H
#define SPROF_SAMPLE_HANDLER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "thread_state.h"

/* Set before the handler is installed; read-only afterwards, but for the
 * trace descriptor, which the handler may replace when the program closed it. */
struct sprof_sampler_config {
    int signal_number;
    int timer_kind;          /* enum sprof_timer_kind */
    uint64_t period_ns;
    /* Weigh perf samples by the counter's reading. Only when the kernel is
     * counted too: a user-only counter still counts time in system calls,
     * which would then be charged to the next user-space sample. */
    bool counter_weights;
    uint32_t max_depth;
    uint64_t flush_interval_ns;
    /* New threads skip the warm-up: their first sample makes libunwind's
     * per-thread cache, which allocates nothing there (profiler.c says when). */
    bool threads_start_cold;
    struct sigaction previous; /* the disposition we replaced */

    _Atomic int trace_fd;    /* -1 when not writing; -2 once given back to a
                                program short of descriptors (then opened
                                for each write) */
    dev_t trace_dev;         /* identity of the trace file, to notice when */
    ino_t trace_ino;         /* the program closed or replaced our descriptor */
    char trace_path[4200];
};
extern struct sprof_sampler_config sprof_sampler;

/* All thread states ever created (never unlinked), newest first. */
extern struct sprof_thread *_Atomic sprof_threads;
extern _Atomic uint32_t sprof_next_table_id;
/* Process-wide counts. */
extern _Atomic uint64_t sprof_lost_samples;      /* state busy, or output failed */
extern _Atomic uint64_t sprof_truncated_stacks;
/* Unwinds under way in any thread, and whether a fork waits for them to end
 * (no new one starts meanwhile). */
extern _Atomic uint32_t sprof_unwinds_running;
/* Unwinds cut short by a fault in them (counted in the trace's notice). */
extern _Atomic uint64_t sprof_unwind_faults;
/* Finds code libunwind is not let into (libgcc's unwinder), once loaded.
 * Not signal-safe: at start-up and after dlopen. */
void sprof_sampler_note_unsafe_code(void);
extern _Atomic bool sprof_fork_waiting;
/* Around the program's dl_iterate_phdr (and sprof's own outside a sample):
 * the calling thread may hold the loader's lock, or be taking or giving it
 * back, and libunwind's slow path calls dl_iterate_phdr from the handler,
 * which then waited for ever on that lock. A sample meanwhile keeps its
 * interrupted address alone, marked cut. They nest. Async-signal-safe. */
void sprof_sampler_loader_enter(void);
void sprof_sampler_loader_leave(void);
extern _Atomic uint64_t sprof_total_samples;
extern _Atomic uint64_t sprof_total_weight_ns;
extern _Atomic uint64_t sprof_write_failures;    /* records that could not be written */

/* The handler. */
void sprof_sampler_on_signal(int signal_number, siginfo_t *info, void *context);
/* Whether a signal's siginfo says it is one of sprof's (a sample), as the
 * handler tells them apart. Async-signal-safe. */
bool sprof_sampler_owns(const siginfo_t *info);

/* Writes out t's pending samples and records. The caller owns t->busy. */
void sprof_thread_flush(struct sprof_thread *t);
/* Empties t's stack table and buffers (its data is dropped, not written).
 * The caller owns t->busy. */
void sprof_thread_reset_buffers(struct sprof_thread *t);
/* Appends t's THREAD record to its buffer and writes it out. The caller
 * owns t->busy. */
void sprof_thread_write_record(struct sprof_thread *t, uint64_t cpu_ns, const char *name);
/* Appends whole records to the trace with one write. Returns false if
 * they could not be written. */
bool sprof_trace_append(const void *bytes, size_t size);
/* The program ran out of descriptors: gives back the trace's, closing it as
 * soon as no append uses it; each append then opens the trace, writes and
 * closes it, or keeps the records in memory (1 MB) until a descriptor is
 * free. Returns false if there was none to give back. */
bool sprof_trace_release_fd(void);
/* Holds a descriptor on the trace again and writes what waits in memory,
 * closing spare_fd (if >= 0) to make room when none is free. For the end
 * of the run, once the timers are stopped. Returns false if it could not. */
bool sprof_trace_hold_fd(int spare_fd);
/* In a fork child: forgets what waits in memory (the parent's records) and
 * the appends that were under way in other threads. */
void sprof_trace_drop_pending(void);

/* The figures of a SUMMARY record that the counters above do not hold. */
struct sprof_summary_values {
    uint64_t wall_ns, user_ns, system_ns, max_rss_kb;
    uint32_t threads;
};
/* Appends a SUMMARY record (with the process-wide counts) or an END record. */
bool sprof_trace_append_summary(const struct sprof_summary_values *values);
bool sprof_trace_append_end(void);

/* Installs the handler for sprof_sampler.signal_number. Not signal-safe;
 * call once at start-up. Returns 0 or an errno value. */
int sprof_sampler_install(void);
/* The program set an alternate signal stack (signals.c): one too small for
 * a signal's frame and our handler makes sprof do without SA_ONSTACK. */
void sprof_sampler_alternate_stack_set(const stack_t *stack);
/* Takes one throw-away sample through a real signal frame, so libunwind's
 * one-time set-up and caches are done before timers are armed. Call from
 * the thread itself, with t already its sprof_current_thread. Not
 * signal-safe. */
void sprof_sampler_warm_up(struct sprof_thread *t);

/* Calls fn(arg) with the stack pointer at top (16-byte aligned), then
 * returns on the caller's stack. Async-signal-safe. */
void sprof_call_on_stack(void (*fn)(void *), void *arg, uintptr_t top);
/* Maps a stack of size bytes (pages only touched as used) with a guard page
 * below, so that an overflow faults rather than writes; returns its top,
 * or 0. extra_flags are added to mmap's. Async-signal-safe. */
uintptr_t sprof_map_guarded_stack(size_t size, int extra_flags);
void sprof_unmap_guarded_stack(uintptr_t top, size_t size);

#endif
