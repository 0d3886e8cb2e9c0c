/* Per-thread sampling timers: a perf_event task-clock counter that signals
 * its own thread, or a CPU-time POSIX timer as the fallback.
 * Not async-signal-safe; called at thread start and end, and at exit. */
#ifndef SPROF_SAMPLING_TIMER_H
#define SPROF_SAMPLING_TIMER_H

#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"
#include "thread_state.h"

struct sprof_timer_plan {
    int timer_kind;       /* enum sprof_timer_kind */
    bool kernel_sampled;  /* perf counts kernel time too (privileged) */
    char notice[256];     /* why the plan differs from the best one, or "" */
};

/* Decides how threads will be sampled, by trying the options on the calling
 * thread. want_kernel: count time in system calls with perf_event where
 * permitted (then samples can interrupt blocking calls). Returns false if
 * no timer can be had at all (why in notice). */
bool sprof_timer_plan_choose(struct sprof_timer_plan *plan, enum sprof_timer_choice choice,
                             bool want_kernel, uint64_t period_ns, int signal_number);

/* Threads that got a CPU-time timer because descriptors ran short. */
extern _Atomic uint32_t sprof_threads_without_perf;

/* The soft RLIMIT_NOFILE (capped), and a descriptor moved (close-on-exec)
 * to the upper half of it, away from the low numbers programs expect;
 * number_kept (if not NULL) gets the new number before the old closes. */
int sprof_fd_limit(void);
int sprof_move_fd_high(int fd, _Atomic int *number_kept);

/* Arms the calling thread's timer per the plan; with perf, falls back to a
 * CPU-time timer when descriptors are short. Returns 0 or an errno. */
int sprof_timer_arm(struct sprof_thread *t, const struct sprof_timer_plan *plan,
                    uint64_t period_ns, int signal_number);

/* The program ran out of descriptors: replaces every thread's perf_event
 * counter by a CPU-time timer on that thread's clock (one thread may arm
 * another's), closes the counters, and gives new threads CPU-time timers
 * from now on. Async-signal-safe; does nothing but the latter while another
 * thread arms or disarms a timer. Returns the descriptors closed. */
int sprof_timers_give_back_descriptors(uint64_t period_ns, int signal_number);
/* Whether t's perf_fd still holds t's counter (the program may have closed
 * it behind our back, with a raw close system call, and reused the
 * number). Async-signal-safe. */
bool sprof_timer_counter_intact(const struct sprof_thread *t);
/* fd was just given to the program, or found to hold a file of the
 * program's: if it was the number of a thread's counter, that descriptor
 * was lost behind our back, and the thread gets a new counter. Cheap for
 * numbers below every counter's. Async-signal-safe. */
void sprof_timers_number_taken(int fd, uint64_t period_ns, bool include_kernel,
                               int signal_number);
/* Counters re-armed so (for the trace's notice). */
extern _Atomic uint32_t sprof_counters_rearmed;
/* In a fork child: forgets a lock the parent's other threads held. */
void sprof_timers_after_fork_child(void);

/* Stops the calling thread's own timer and releases it. */
void sprof_timer_disarm(struct sprof_thread *t);

/* Stops (pauses) a thread's timer from any thread, without releasing its
 * descriptor, which that thread's handler may be reading at this moment. */
void sprof_timer_stop_remote(struct sprof_thread *t);
/* Restarts a timer stopped by sprof_timer_stop_remote. */
void sprof_timer_resume_remote(struct sprof_thread *t, uint64_t period_ns);

#endif
