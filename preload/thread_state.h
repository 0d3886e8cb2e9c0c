/* Per-thread profiler state.
 *
 * There is no profiler thread: a profiled program keeps exactly its own
 * threads (a helper thread changes what setxid, per-thread capabilities and
 * fork warnings see). Each thread's signal handler deduplicates its stacks,
 * batches its samples and appends them to the trace itself.
 *
 * Ownership: states live in a lock-free list and are never unmapped; a
 * thread claims a FREE state when it starts and frees it when it ends. The
 * `busy` flag serializes the state's users: its own handler (1) and a
 * flusher from another thread or from exit (2). Whoever sets it from 0 may
 * touch the buffers; nobody waits for it inside a signal handler. */
#ifndef SPROF_THREAD_STATE_H
#define SPROF_THREAD_STATE_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum sprof_slot_state { SPROF_STATE_FREE = 0, SPROF_STATE_ACTIVE = 1 };
enum sprof_busy { SPROF_IDLE = 0, SPROF_BUSY_HANDLER = 1, SPROF_BUSY_FLUSHER = 2 };

/* One node of this thread's frame tree (FRAMES in trace_format.h): an
 * address and the node of its caller. A stack is stored as its leaf node. */
struct sprof_frame_node {
    uint64_t address;
    uint32_t parent_flags;    /* parent << 1 | truncated, as written */
    uint32_t pending_samples; /* samples at this leaf not yet written */
    uint64_t pending_weight_ns;
};
struct sprof_thread {
    struct sprof_thread *next; /* the list only grows */
    _Atomic int state;         /* enum sprof_slot_state */
    _Atomic int busy;          /* enum sprof_busy */
    _Atomic int unwinding;     /* inside libunwind, which may be reading its
                                  pipe's numbers (fd_guard.c) */

    pid_t tid;
    int perf_fd;               /* -1 when not using perf_event */
    int perf_signal_fd;        /* perf_fd when armed: signals carry it as si_fd
                                  even after the descriptor was moved */
    uint64_t perf_id;          /* the counter's kernel id, to tell it from a
                                  file the program has at perf_fd's number
                                  after closing ours behind our back */
    _Atomic int perf_fd_changing; /* a counter's number while it is being
                                  made or closed (not yet or no longer
                                  perf_fd), else -1: hidden from the
                                  program's probes meanwhile (fd_guard.c) */
    void *perf_page;           /* the counter's mapped page, or NULL: keeps
                                  it counting and signalling if its
                                  descriptor is closed behind our back */
    bool has_timer;            /* timer_create timer in use */
    timer_t timer;
    uint64_t last_count;       /* perf counter at the previous sample */
    bool warming_up;           /* the next signal is the warm-up, not a sample */
    /* Taken by the process itself when the end of the run is written by a
     * helper process (sprof_trace_measure_end), which cannot read them. */
    bool end_measured;
    uint64_t end_cpu_ns;
    /* Its CPU clock when sampling began: the main thread's holds earlier
     * images' time after an exec (THREAD records report their own). */
    uint64_t start_cpu_ns;
    char end_name[16];

    /* Buffers, one mapping, sized at creation; guarded by busy. */
    uint32_t table_id;         /* this trace's id of the frame table */
    struct sprof_frame_node *nodes; /* [1, node_count]; node 0 is unused */
    uint32_t node_capacity, node_count;
    uint32_t nodes_usable;     /* nodes [0, nodes_usable) are read-write */
    uint32_t index_usable;     /* likewise for node_index's slots */
    uint32_t nodes_written;    /* nodes already in FRAMES records */
    uint32_t *node_index;      /* open addressing over nodes; 0 = empty */
    uint32_t index_capacity;   /* a power of two; grows up to index_max */
    uint32_t index_max;
    uint32_t *pending;         /* leaf nodes with pending samples */
    uint32_t pending_capacity, pending_count;
    /* The previous sample's stack, root first, and its nodes: the next
     * sample usually shares all but its innermost frames. */
    uint64_t *path_addresses;
    uint32_t *path_nodes;
    uint32_t path_depth;
    bool path_truncated;
    uint8_t *out;              /* whole records not yet written */
    /* Unwinding buffers, here rather than on the handler's stack, which may
     * be a program's small alternate signal stack. */
    void **scratch_frames;     /* SPROF_STACK_MAX_DEPTH + 33 entries */
    uint64_t *scratch_pcs;     /* SPROF_STACK_MAX_DEPTH entries */
    uintptr_t stack_low, stack_high; /* the thread's own stack */
    /* sprof's own stack for samples taken on a stack of unknown room (a
     * coroutine's, from makecontext): made on first need, kept with the
     * state; its top, or 0. */
    uintptr_t private_stack_top;
    uint32_t out_size, out_used;
    uint64_t last_flush_ns;
    void *mapping;
    size_t mapping_size;

    /* This thread's counts, for its THREAD record. */
    _Atomic uint64_t samples;
    _Atomic uint64_t weight_ns;
};

/* This thread's state, or NULL when it is not sampled. initial-exec TLS so
 * the signal handler reads it without calling into the dynamic loader. */
extern __thread struct sprof_thread *sprof_current_thread
    __attribute__((tls_model("initial-exec")));

#endif
