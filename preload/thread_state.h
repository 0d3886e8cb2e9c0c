/* Per-thread profiler state and its sample ring.
 *
 * Ownership: a thread's state is created by the thread itself when it
 * starts (thread_registry.c), written by its signal handler (producer) and
 * drained by the writer thread (consumer). When the thread ends it stops its
 * timer, clears sprof_current_thread and marks the state EXITED; from then
 * on only the writer touches it, and frees it once drained. */
#ifndef SPROF_THREAD_STATE_H
#define SPROF_THREAD_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>
#include <time.h>

enum sprof_thread_phase {
    SPROF_THREAD_RUNNING = 0,
    SPROF_THREAD_EXITED = 1, /* handed to the writer: drain, record, free */
};

/* A ring entry is [header][weight_ns][address * depth], in 64-bit words.
 * header = depth | flags << 16 | SPROF_RING_MAGIC << 32. */
#define SPROF_RING_MAGIC 0x5350u

struct sprof_thread {
    struct sprof_thread *next; /* registry list, under the registry lock */
    pid_t tid;
    int perf_fd;          /* -1 when not using perf_event */
    bool has_timer;       /* timer_create timer in use */
    timer_t timer;
    uint64_t last_count;  /* perf counter at the previous sample (handler) */
    bool warming_up;      /* the next signal is the warm-up, not a sample */
    volatile sig_atomic_t in_handler; /* re-entry guard */

    uint64_t *ring;       /* ring_words 64-bit words, a power of two */
    uint64_t ring_words;
    _Atomic uint64_t head; /* words produced; only the handler stores it */
    _Atomic uint64_t tail; /* words consumed; only the writer stores it */
    _Atomic int kicked;    /* the writer was woken for this thread */

    /* Counters the handler updates and the writer reads. */
    _Atomic uint64_t samples;
    _Atomic uint64_t weight_ns;
    _Atomic uint64_t lost;
    _Atomic uint64_t truncated;

    _Atomic int phase;     /* enum sprof_thread_phase */
    uint64_t cpu_ns;       /* measured CPU when the thread ended */
    char name[16];
};

/* This thread's state, or NULL when it is not sampled. initial-exec TLS so
 * the signal handler reads it without calling into the dynamic loader. */
extern __thread struct sprof_thread *sprof_current_thread
    __attribute__((tls_model("initial-exec")));

#endif
