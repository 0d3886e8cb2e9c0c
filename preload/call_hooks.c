/* ASYNC-SIGNAL-SAFE CODE ONLY.
 *
 * The -finstrument-functions hooks and the per-thread tables they fill.
 * They run at every call and return of an instrumented program, anywhere:
 * inside its signal handlers, inside its malloc. So they may call only
 * mmap/munmap, write (through sprof_trace_append), gettid and atomics:
 * never malloc, stdio or locks, and never wait inside a hook.
 *
 * Per thread: a table of functions (calls, primitive calls, how many of its
 * activations are live), a table of call edges (call site -> callee), and a
 * shadow stack of live activations with the stack address of each. A
 * longjmp or an exception that skips exit hooks leaves stale entries; they
 * are found by their stack address (deeper than the current call) and
 * popped, so an unbalanced exit never corrupts the counts.
 *
 * `busy` serializes the hooks of the thread (1) with a snapshot taken from
 * another thread at exit (2): whoever sets it from 0 owns the tables. A
 * hook of a signal handler that interrupted one of the thread's own hooks
 * leaves its event in `deferred`, which the interrupted hook applies before
 * it lets go. */
#include "call_hooks.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"
#include "sprof/trace_format.h"

_Atomic bool sprof_call_counts_recorded;

struct function_entry {
    uint64_t function; /* 0: empty */
    uint64_t calls;
    uint64_t primitive;
    uint64_t active;
};

struct edge_entry {
    uint64_t call_site; /* 0 with callee 0: empty */
    uint64_t callee;
    uint64_t calls;
};

struct activation {
    uint64_t function;
    uintptr_t stack_address;
};

/* A hook's event recorded by a signal handler while this thread's tables
 * were held by the hook it interrupted. */
struct deferred_event {
    uint64_t function, call_site;
    uintptr_t stack_address;
    bool is_exit;
};
#define DEFERRED_MAX 256u

struct call_counts {
    struct call_counts *next; /* every table ever made; the list only grows */
    _Atomic int busy;
    _Atomic int in_use;
    bool stopped;             /* a final snapshot was written */
    pid_t tid;
    uint32_t sequence;        /* snapshots written so far */
    _Atomic uint64_t dropped;
    struct function_entry *functions;
    uint32_t function_capacity, function_count;
    struct edge_entry *edges;
    uint32_t edge_capacity, edge_count;
    struct activation *stack;
    uint32_t stack_capacity, depth;
    struct deferred_event deferred[DEFERRED_MAX];
    _Atomic uint32_t deferred_count;
    uint8_t out[32768];       /* records being written */
    uint32_t out_used;
};

static struct call_counts *_Atomic all_counts;
static __thread struct call_counts *thread_counts __attribute__((tls_model("initial-exec")));

static void *map_zeroed(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static bool grow_functions(struct call_counts *c)
{
    uint32_t capacity = c->function_capacity ? c->function_capacity * 2 : 1024;
    struct function_entry *table = map_zeroed(capacity * sizeof *table);
    if (!table)
        return false;
    for (uint32_t i = 0; i < c->function_capacity; i++) {
        struct function_entry *e = &c->functions[i];
        if (!e->function)
            continue;
        uint32_t at = (uint32_t)mix(e->function) & (capacity - 1);
        while (table[at].function)
            at = (at + 1) & (capacity - 1);
        table[at] = *e;
    }
    if (c->functions)
        munmap(c->functions, c->function_capacity * sizeof *c->functions);
    c->functions = table;
    c->function_capacity = capacity;
    return true;
}

static struct function_entry *function_entry(struct call_counts *c, uint64_t function)
{
    if ((c->function_count + 1) * 2 > c->function_capacity && !grow_functions(c))
        return NULL;
    uint32_t mask = c->function_capacity - 1;
    uint32_t at = (uint32_t)mix(function) & mask;
    while (c->functions[at].function && c->functions[at].function != function)
        at = (at + 1) & mask;
    struct function_entry *e = &c->functions[at];
    if (!e->function) {
        e->function = function;
        c->function_count++;
    }
    return e;
}

static bool grow_edges(struct call_counts *c)
{
    uint32_t capacity = c->edge_capacity ? c->edge_capacity * 2 : 2048;
    struct edge_entry *table = map_zeroed(capacity * sizeof *table);
    if (!table)
        return false;
    for (uint32_t i = 0; i < c->edge_capacity; i++) {
        struct edge_entry *e = &c->edges[i];
        if (!e->calls)
            continue;
        uint32_t at = (uint32_t)mix(e->call_site ^ mix(e->callee)) & (capacity - 1);
        while (table[at].calls)
            at = (at + 1) & (capacity - 1);
        table[at] = *e;
    }
    if (c->edges)
        munmap(c->edges, c->edge_capacity * sizeof *c->edges);
    c->edges = table;
    c->edge_capacity = capacity;
    return true;
}

static void count_edge(struct call_counts *c, uint64_t call_site, uint64_t callee)
{
    if ((c->edge_count + 1) * 2 > c->edge_capacity && !grow_edges(c))
        return;
    uint32_t mask = c->edge_capacity - 1;
    uint32_t at = (uint32_t)mix(call_site ^ mix(callee)) & mask;
    while (c->edges[at].calls &&
           (c->edges[at].call_site != call_site || c->edges[at].callee != callee))
        at = (at + 1) & mask;
    struct edge_entry *e = &c->edges[at];
    if (!e->calls) {
        e->call_site = call_site;
        e->callee = callee;
        c->edge_count++;
    }
    e->calls++;
}

static bool push_activation(struct call_counts *c, uint64_t function, uintptr_t stack_address)
{
    if (c->depth == c->stack_capacity) {
        uint32_t capacity = c->stack_capacity ? c->stack_capacity * 2 : 1024;
        struct activation *stack = map_zeroed(capacity * sizeof *stack);
        if (!stack)
            return false;
        if (c->stack) {
            memcpy(stack, c->stack, c->depth * sizeof *stack);
            munmap(c->stack, c->stack_capacity * sizeof *c->stack);
        }
        c->stack = stack;
        c->stack_capacity = capacity;
    }
    c->stack[c->depth++] = (struct activation){function, stack_address};
    return true;
}

static void pop_activation(struct call_counts *c)
{
    struct function_entry *e = function_entry(c, c->stack[--c->depth].function);
    if (e && e->active > 0)
        e->active--;
}

/* Pops activations whose frames are gone: deeper than (or, with
 * or_equal, as deep as) the given stack address. */
static void pop_abandoned(struct call_counts *c, uintptr_t stack_address, bool or_equal)
{
    while (c->depth > 0) {
        uintptr_t top = c->stack[c->depth - 1].stack_address;
        if (top < stack_address || (or_equal && top == stack_address))
            pop_activation(c);
        else
            break;
    }
}

static struct call_counts *counts_for_thread(void)
{
    struct call_counts *c = thread_counts;
    if (c || !atomic_load_explicit(&sprof.active, memory_order_relaxed))
        return c;
    /* Reuse a table freed by an ended thread, or make one. */
    for (c = atomic_load(&all_counts); c; c = c->next) {
        int unused = 0;
        if (atomic_compare_exchange_strong(&c->in_use, &unused, 1))
            break;
    }
    if (!c) {
        c = map_zeroed(sizeof *c);
        if (!c)
            return NULL;
        atomic_store(&c->in_use, 1);
        struct call_counts *head = atomic_load(&all_counts);
        do
            c->next = head;
        while (!atomic_compare_exchange_weak(&all_counts, &head, c));
    }
    c->tid = gettid();
    thread_counts = c;
    return c;
}

static void apply_enter(struct call_counts *c, uint64_t function, uint64_t call_site,
                        uintptr_t here)
{
    /* A live caller is always shallower than this call. */
    pop_abandoned(c, here, true);
    struct function_entry *e = function_entry(c, function);
    if (e) {
        e->calls++;
        if (e->active == 0)
            e->primitive++;
        if (push_activation(c, e->function, here))
            e->active++;
        count_edge(c, call_site - 1, e->function);
    }
}

static void apply_exit(struct call_counts *c, uint64_t function, uintptr_t here)
{
    pop_abandoned(c, here, false);
    /* An exit that matches no live activation is ignored. */
    if (c->depth > 0 && c->stack[c->depth - 1].function == function)
        pop_activation(c);
}

/* Runs the events that signal handlers recorded while a hook of this
 * thread held the tables. Called with busy held. */
static void apply_deferred(struct call_counts *c)
{
    uint32_t done = 0;
    for (;;) {
        uint32_t count = atomic_load(&c->deferred_count);
        while (done < count && done < DEFERRED_MAX) {
            const struct deferred_event *ev = &c->deferred[done++];
            if (ev->is_exit)
                apply_exit(c, ev->function, ev->stack_address);
            else
                apply_enter(c, ev->function, ev->call_site, ev->stack_address);
        }
        /* Reset only if no handler appended meanwhile. */
        if (atomic_compare_exchange_strong(&c->deferred_count, &count, 0))
            return;
    }
}

/* Takes the tables for a hook. A hook re-entered from a signal handler
 * that interrupted this thread's own hook defers its event to the
 * interrupted one; only while another thread writes the tables out (at
 * exit) are calls dropped, and counted as such. */
static bool enter_hook(struct call_counts *c, bool is_exit, uint64_t function,
                       uint64_t call_site, uintptr_t here)
{
    int idle = 0;
    if (!c->stopped && atomic_compare_exchange_strong_explicit(&c->busy, &idle, 1,
                                                               memory_order_acquire,
                                                               memory_order_relaxed))
        return true;
    if (idle == 1 && !c->stopped) {
        uint32_t at = atomic_fetch_add(&c->deferred_count, 1);
        if (at < DEFERRED_MAX) {
            c->deferred[at] = (struct deferred_event){function, call_site, here, is_exit};
            return false;
        }
    }
    atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
    return false;
}

static void leave_hook(struct call_counts *c)
{
    for (;;) {
        if (atomic_load(&c->deferred_count))
            apply_deferred(c);
        atomic_store_explicit(&c->busy, 0, memory_order_release);
        /* A handler may have deferred an event just before the release. */
        int idle = 0;
        if (!atomic_load(&c->deferred_count) ||
            !atomic_compare_exchange_strong(&c->busy, &idle, 1))
            return;
    }
}

SPROF_EXPORT void __cyg_profile_func_enter(void *function, void *call_site)
{
    struct call_counts *c = counts_for_thread();
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (!c || !enter_hook(c, false, (uint64_t)(uintptr_t)function,
                          (uint64_t)(uintptr_t)call_site, here))
        return;
    apply_enter(c, (uint64_t)(uintptr_t)function, (uint64_t)(uintptr_t)call_site, here);
    leave_hook(c);
}

SPROF_EXPORT void __cyg_profile_func_exit(void *function, void *call_site)
{
    (void)call_site;
    struct call_counts *c = thread_counts;
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (!c || !enter_hook(c, true, (uint64_t)(uintptr_t)function, 0, here))
        return;
    apply_exit(c, (uint64_t)(uintptr_t)function, here);
    leave_hook(c);
}

/* --- Snapshots ----------------------------------------------------------- */

static void put_le(uint8_t *at, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

/* Writes a table as CALL_COUNTS records of at most sizeof out bytes. */
static void write_entries(struct call_counts *c, uint32_t kind)
{
    const uint32_t header = 8 + 24, entry_size = 24;
    const uint32_t per_record = (sizeof c->out - header) / entry_size;
    uint32_t capacity = kind == SPROF_CALLS_FUNCTIONS ? c->function_capacity : c->edge_capacity;
    uint32_t next = 0;
    do {
        uint32_t count = 0;
        uint8_t *entries = c->out + header;
        for (; next < capacity && count < per_record; next++) {
            uint64_t a, b, n;
            if (kind == SPROF_CALLS_FUNCTIONS) {
                const struct function_entry *e = &c->functions[next];
                a = e->function, b = e->calls, n = e->primitive;
                if (!a)
                    continue;
            } else {
                const struct edge_entry *e = &c->edges[next];
                a = e->call_site, b = e->callee, n = e->calls;
                if (!n)
                    continue;
            }
            put_le(entries + count * entry_size, a, 8);
            put_le(entries + count * entry_size + 8, b, 8);
            put_le(entries + count * entry_size + 16, n, 8);
            count++;
        }
        if (count == 0 && next > 0)
            break;
        put_le(c->out, SPROF_REC_CALL_COUNTS, 4);
        put_le(c->out + 4, 24 + count * entry_size, 4);
        put_le(c->out + 8, (uint32_t)c->tid, 4);
        put_le(c->out + 12, c->sequence, 4);
        put_le(c->out + 16, kind, 4);
        put_le(c->out + 20, count, 4);
        put_le(c->out + 24, atomic_load(&c->dropped), 8);
        sprof_trace_append(c->out, header + count * entry_size);
        if (count > 0)
            atomic_store_explicit(&sprof_call_counts_recorded, true, memory_order_relaxed);
    } while (next < capacity);
}

/* The caller owns c->busy. */
static void write_snapshot(struct call_counts *c, bool final)
{
    if (c->function_count == 0 && !atomic_load(&c->dropped))
        return;
    c->sequence++;
    write_entries(c, SPROF_CALLS_FUNCTIONS);
    write_entries(c, SPROF_CALLS_EDGES);
    if (final)
        c->stopped = true;
}

static void reset(struct call_counts *c)
{
    if (c->functions)
        memset(c->functions, 0, c->function_capacity * sizeof *c->functions);
    if (c->edges)
        memset(c->edges, 0, c->edge_capacity * sizeof *c->edges);
    c->function_count = c->edge_count = c->depth = 0;
    atomic_store(&c->deferred_count, 0);
    c->sequence = 0;
    c->stopped = false;
    atomic_store(&c->dropped, 0);
}

/* Takes c->busy, waiting boundedly for a hook that holds it. */
static bool acquire(struct call_counts *c)
{
    for (int tries = 0; tries < 100000; tries++) {
        int idle = 0;
        if (atomic_compare_exchange_weak(&c->busy, &idle, 2))
            return true;
    }
    return false;
}

void sprof_call_counts_end_thread(void)
{
    struct call_counts *c = thread_counts;
    if (!c || !acquire(c))
        return;
    thread_counts = NULL;
    write_snapshot(c, true);
    reset(c);
    atomic_store(&c->busy, 0);
    atomic_store(&c->in_use, 0);
}

void sprof_call_counts_write_all(bool final)
{
    for (struct call_counts *c = atomic_load(&all_counts); c; c = c->next) {
        if (!atomic_load(&c->in_use) || !acquire(c))
            continue;
        write_snapshot(c, final);
        /* When final, the tables stay taken: later hooks are dropped. */
        if (!final)
            atomic_store(&c->busy, 0);
    }
}

void sprof_call_counts_after_fork_child(void)
{
    atomic_store(&sprof_call_counts_recorded, false);
    struct call_counts *self = thread_counts;
    for (struct call_counts *c = atomic_load(&all_counts); c; c = c->next) {
        atomic_store(&c->busy, 0);
        if (c == self) {
            reset(c);
            c->tid = gettid();
        } else if (atomic_load(&c->in_use)) {
            reset(c);
            atomic_store(&c->in_use, 0);
        }
    }
}
