/* Exact call counts from -finstrument-functions: libsprof.so defines
 * __cyg_profile_func_enter and __cyg_profile_func_exit, which glibc only
 * defines as no-ops. Everything in call_hooks.c is ASYNC-SIGNAL-SAFE: the
 * hooks run wherever the program's code runs, in its signal handlers and
 * its allocator too. */
#ifndef SPROF_CALL_HOOKS_H
#define SPROF_CALL_HOOKS_H

#include <stdbool.h>
#include <sys/types.h>

/* Whether any CALL_COUNTS record held counts: their addresses need names. */
extern _Atomic bool sprof_call_counts_recorded;

/* Appends the calling thread's counts to the trace as a new snapshot and
 * stops counting on this thread. */
void sprof_call_counts_end_thread(void);
/* Appends a snapshot of every thread's counts. When final, the counting
 * stops for good (exit, _exit); otherwise it goes on (before exec). */
void sprof_call_counts_write_all(bool final);
/* After fork, in the child: drops the parent's threads' counts and
 * restarts this thread's from zero. */
void sprof_call_counts_after_fork_child(void);

#endif
