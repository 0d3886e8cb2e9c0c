/* The sampling signal handler and what it may touch.
 *
 * Everything in sample_handler.c runs inside a signal handler and is
 * ASYNC-SIGNAL-SAFE; see the header comment there for the rules. The
 * functions declared here are marked with the context they may be called
 * from. */
#ifndef SPROF_SAMPLE_HANDLER_H
#define SPROF_SAMPLE_HANDLER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "thread_state.h"

/* Set before the handler is installed, read-only afterwards. */
struct sprof_sampler_config {
    int signal_number;
    int timer_kind;          /* enum sprof_timer_kind */
    uint64_t period_ns;
    /* Weigh perf samples by the counter's reading. Only when the kernel is
     * counted too: a user-only counter still counts time in system calls,
     * which would then be charged to the next user-space sample. */
    bool counter_weights;
    uint32_t max_depth;
    int wake_fd;             /* eventfd that wakes the writer, or -1 */
    struct sigaction previous; /* the disposition we replaced */
};
extern struct sprof_sampler_config sprof_sampler;

/* Installs the handler for sprof_sampler.signal_number. Not signal-safe;
 * call once at start-up. Returns 0 or an errno value. */
int sprof_sampler_install(void);

/* Takes one throw-away sample through a real signal frame, so libunwind's
 * one-time set-up and caches are done before timers are armed. Call from
 * the thread itself, with t already its sprof_current_thread. Not
 * signal-safe. */
void sprof_sampler_warm_up(struct sprof_thread *t);

/* The handler. Async-signal-safe. */
void sprof_sampler_on_signal(int signal_number, siginfo_t *info, void *context);

#endif
