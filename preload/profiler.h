/* Process-wide profiler state and the normal-context pieces that share it.
 * Nothing declared here is async-signal-safe; the handler's side is in
 * sample_handler.h. */
#ifndef SPROF_PROFILER_H
#define SPROF_PROFILER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sampling_timer.h"
#include "settings.h"
#include "thread_state.h"

#define SPROF_EXPORT __attribute__((visibility("default")))

struct sprof_profiler {
    _Atomic bool active;      /* sampling and writing; false once stopped */
    bool root;                /* the run's first process (its trace is the one named) */
    bool prints_line;         /* prints the run's one stderr line */
    struct sprof_settings settings;
    struct sprof_timer_plan plan;
    uint64_t period_ns;
    uint64_t run_id;
    uint64_t start_monotonic_ns;
    /* The process's CPU time when this image started (getrusage): before an
     * exec it was an earlier image's, which that image's summary reports. */
    uint64_t start_user_ns, start_system_ns;
    pthread_key_t thread_key; /* its destructor ends a thread's sampling */
    bool stderr_line_printed; /* at most one line per process, ever */
    /* The stderr the program was started with, the only one the line may
     * go to: a program started with fd 2 closed gets it back from its first
     * open, and a line there would land in the program's own file. */
    bool stderr_known;
    dev_t stderr_dev;
    ino_t stderr_ino;
    pid_t pid;                /* this process; differs in a vfork child */
};
extern struct sprof_profiler sprof;

uint64_t sprof_monotonic_ns(void);
/* Ends profiling at exit (the destructor) or at _exit (quick: async-signal-
 * safe, no symbols). Only in the process itself, never in a vfork child
 * that shares its memory. */
void sprof_stop(bool quick);
/* Called by the interposed exit: when another thread is already exiting,
 * waits (at most 5 s) until it has ended the trace, or this thread's exit
 * would end the process while the trace's end is being written. */
void sprof_before_exit(void);
/* Whether the calling process is the one profiled (not a vfork child). */
bool sprof_in_profiled_process(void);

/* Threads (thread_registry.c). */
/* Starts sampling the calling thread. Returns its state or NULL. */
struct sprof_thread *sprof_thread_begin(void);
/* Threads left unsampled because their state could not be mapped (an
 * address-space limit: each reserves room for its frame tree). */
extern _Atomic uint32_t sprof_threads_without_state;
size_t sprof_thread_reserved_bytes(void);
/* Stops sampling the calling thread and writes out its samples. */
void sprof_thread_end(struct sprof_thread *t);
/* Takes t->busy for normal code, waiting (boundedly) for its handler. */
void sprof_thread_acquire(struct sprof_thread *t);
void sprof_thread_release(struct sprof_thread *t);
/* A thread's name from /proc (works for other threads, too).
 * Async-signal-safe. */
void sprof_thread_read_name(pid_t tid, char name[16]);
/* The CPU time a thread of this process has used, by tid; 0 if unknown. */
uint64_t sprof_thread_cpu_ns(pid_t tid);
/* After fork, in the child: forget every thread but self, the calling
 * one's state (NULL if it has none). */
void sprof_threads_after_fork_child(struct sprof_thread *self);
/* What pthread_create passes to sprof_start_sampled_thread (malloc'd). */
struct sprof_start_info {
    void *(*start)(void *);
    void *arg;
    bool sampling_blocked; /* the creator's view of the sampling signal */
};
void *sprof_start_sampled_thread(void *start_info);
/* The real pthread_create, found with dlsym(RTLD_NEXT). */
int sprof_real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                              void *(*start)(void *), void *arg);

/* The trace file (trace_file.c). */
/* Creates the trace file and writes its header, PROCESS record and
 * modules. Returns 0 or an errno value. */
int sprof_trace_open(const char *path, const char *settings_warnings);
/* Records objects loaded since the last call. Cheap when there are none. */
void sprof_trace_update_modules(void);
/* Stops sampling everywhere; writes the last samples, the threads, the
 * summary and the symbols; closes the trace. */
void sprof_trace_finish(void);
/* Appends a NOTICE record (kind INFO) with text. */
void sprof_trace_add_notice(const char *text);
/* The program is about to enter a seccomp sandbox (interposed.c), which
 * may forbid the system calls sprof makes: sprof ends its trace there. */
void sprof_stop_before_sandbox(const char *how);
/* The same, async-signal-safe, without symbols (the analyzer names the
 * addresses from the recorded modules): for _exit, which programs call
 * from signal handlers. */
void sprof_trace_finish_quick(void);
/* Takes what only the process itself can read (its threads' CPU times and
 * names, its resource usage) for a finish run by a helper process.
 * Async-signal-safe. */
void sprof_trace_measure_end(void);
/* Takes the process's CPU time so far, where this image's own begins
 * (sprof.start_user_ns, start_system_ns). */
void sprof_trace_note_start_usage(void);
/* Around exec: stop the timers and write everything out; resume if exec
 * failed. */
void sprof_trace_before_exec(void);
void sprof_trace_after_failed_exec(void);
void sprof_trace_before_fork(void);
void sprof_trace_after_fork_parent(void);
/* In the child: forgets the parent's trace and every thread but self. */
void sprof_trace_after_fork_child(struct sprof_thread *self);

/* Descriptor guard (fd_guard.c). libunwind's memory-validation pipe, just
 * made by libunwind inside the unwinding window: kept off the program's
 * close and dup2. */
void sprof_fd_guard_note_unwinder_pipe(int fds[2]);
/* Resolve the real functions behind the interposed ones; call first thing
 * at start-up (not signal-safe). */
void sprof_fd_guard_init(void);
/* Takes libunwind's pipe from it and closes it (libunwind opens another
 * when it next needs one, if it can). Returns the number of descriptors
 * freed. Async-signal-safe. */
int sprof_fd_guard_give_back_unwinder_pipe(void);
/* Likewise, but one of the pipe's descriptors is handed over for the end
 * of the run instead of closed; -1 if none. */
int sprof_fd_guard_take_unwinder_fd(void);
/* fstat without the interposed one, which hides sprof's descriptors.
 * Async-signal-safe. */
struct stat;
int sprof_fstat_raw(int fd, struct stat *st);
/* Whether fd is one of sprof's, which the program's probes see as closed. */
bool sprof_fd_guard_hidden(int fd);

/* Descriptor budget (fd_budget.c). */
void sprof_fd_budget_init(void);
/* After the program's EMFILE: gives back the descriptors sprof can do
 * without. Returns whether it gave any. Async-signal-safe. */
bool sprof_fd_budget_give_back(void);
/* When that first happened, in ns since the start plus one; 0 if never. */
extern _Atomic uint64_t sprof_fd_pressure_ns;
void sprof_interposed_init(void);
/* The real dlopen, for sprof's own library: not recorded among the
 * program's modules, so it names none of the program's addresses, even
 * where it lands on a span a dlclose left. */
void *sprof_real_dlopen(const char *file, int mode);

/* Finds libsprof-names.so (exit_names.h) beside libsprof.so, while the
 * start's working directory still resolves a relative LD_PRELOAD path. */
void sprof_names_library_locate(const char *start_directory);

#endif
