/* ASYNC-SIGNAL-SAFE CODE ONLY.
 *
 * This file holds the sampling signal handler and everything it calls: the
 * unwinding, the per-thread stack table and sample batches, and the writes
 * to the trace. It runs at any instruction of the host program, inside
 * malloc, inside the dynamic loader, inside locks. So it may call only:
 *   - async-signal-safe system calls: read, write, open, close, fstat,
 *     fcntl, clock_gettime, getpid, sigaction, sigaltstack, raise,
 *     rt_sigqueueinfo and rt_tgsigqueueinfo (sprof_signals_defer); and
 *     mprotect and mmap, plain system calls, to grow the frame tree's
 *     memory and to make a thread's private stack;
 *   - libunwind's local unwinding (unw_backtrace, unw_init_local2,
 *     unw_step, unw_get_reg). A thread's first unw_backtrace maps its
 *     cache (mmap, libunwind's locks with signals blocked, and
 *     pthread_setspecific on a key below 32, which does not allocate;
 *     profiler.c checks that, else each thread warms up at its start);
 *     nothing after that allocates;
 *   - lock-free atomics.
 * Never malloc, stdio, locks, libdw, or anything that may take the loader
 * lock for the first time; no waiting on another thread. errno is saved and
 * restored. Debug output, if ever needed here, goes through write(2). */
#include "sample_handler.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "module_list.h"
#include "signals.h"
#include "sprof/trace_format.h"
#include "varint.h"

struct sprof_sampler_config sprof_sampler = {.trace_fd = -1};
struct sprof_thread *_Atomic sprof_threads;
_Atomic uint32_t sprof_next_table_id;
_Atomic uint64_t sprof_lost_samples;
_Atomic uint64_t sprof_truncated_stacks;
_Atomic uint32_t sprof_unwinds_running;
_Atomic uint64_t sprof_unwind_faults;
_Atomic bool sprof_fork_waiting;
_Atomic uint64_t sprof_total_samples;
_Atomic uint64_t sprof_total_weight_ns;
_Atomic uint64_t sprof_write_failures;
static _Atomic uint64_t last_sweep_ns;

/* Frames that may precede the interrupted one in unw_backtrace's output:
 * this handler, libunwind's own, and the kernel's signal trampoline. */
#define HANDLER_FRAMES_MAX 32
/* Stack this handler needs, with a margin: measured at about 5.5 KB
 * (libunwind's context and cursor, our frames; the address buffers live in
 * the thread's state, not here), by the high-water mark of a program's
 * alternate stack (test/e2e/programs/altstack.c). */
#define HANDLER_STACK_NEEDED (8 * 1024)
/* Room below the handler's frame for a whole sample: libunwind's slow path
 * and take_sample's frames, with a margin. Less, and the sample is taken on
 * the thread's private stack. */
#define UNWIND_STACK_NEEDED (32 * 1024)
/* The frame index's size when a table starts: 16 KB. */
#define INDEX_FIRST_CAPACITY 4096u
/* A reopened trace descriptor is moved at least this high, out of the way
 * of programs that expect the lowest free numbers. */
#define HIGH_FD 512

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- The trace file ------------------------------------------------------ */

/* open, close and fcntl go through syscall() here: libsprof.so interposes
 * libc's (fd_budget.c), and the handler needs none of what they add. */
#include <sys/syscall.h>

/* trace_fd's value once the program ran out of descriptors and ours was
 * given back (sprof_trace_release_fd): each append then opens the trace,
 * writes and closes it. */
#define TRACE_PER_APPEND (-2)
/* Appends using the held descriptor right now, and that descriptor once it
 * was given back while they ran: the last of them closes it, so that no
 * write reaches a file the program opened at the same number. */
static _Atomic int appends_in_flight;
static _Atomic int retired_trace_fd = -1;
/* Records that found no descriptor free, written before the next append
 * that finds one (order matters: a STACK precedes its SAMPLES). Guarded by
 * stash_busy, which nobody waits on. */
#define STASH_BYTES (1u << 20)
static uint8_t stash[STASH_BYTES];
static _Atomic size_t stash_used;
static atomic_flag stash_busy = ATOMIC_FLAG_INIT;

static bool is_trace_file(int fd)
{
    struct stat st;
    return syscall(SYS_fstat, fd, &st) == 0 && st.st_dev == sprof_sampler.trace_dev &&
           st.st_ino == sprof_sampler.trace_ino;
}

/* The trace opened by path (never creating or following a link), or -1.
 * System calls, not libc's open and fcntl, which libsprof.so interposes. */
static int open_trace_by_path(void)
{
    long fd = syscall(SYS_openat, AT_FDCWD, sprof_sampler.trace_path,
                      O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    if (!is_trace_file((int)fd)) {
        syscall(SYS_close, fd);
        return -1;
    }
    return (int)fd;
}

/* Our descriptor, checked: a daemon may have closed it, or put another
 * file at its number. Then the trace is reopened by path, at a high
 * number. Returns -1 if that fails, or TRACE_PER_APPEND. */
static int trace_fd(void)
{
    int fd = atomic_load_explicit(&sprof_sampler.trace_fd, memory_order_acquire);
    if (fd < 0 || is_trace_file(fd))
        return fd;
    int reopened = open_trace_by_path();
    if (reopened < 0)
        return -1;
    long high = syscall(SYS_fcntl, reopened, F_DUPFD_CLOEXEC, HIGH_FD);
    if (high >= 0) {
        syscall(SYS_close, reopened);
        reopened = (int)high;
    }
    /* Another thread may have reopened it first: then use theirs. */
    if (!atomic_compare_exchange_strong(&sprof_sampler.trace_fd, &fd, reopened)) {
        syscall(SYS_close, reopened);
        return fd;
    }
    return reopened;
}

/* Whether size more bytes fit under the file-size limit (RLIMIT_FSIZE):
 * a write past it sends SIGXFSZ, whose default action ends the program (a
 * sandboxed program forbids itself files with a limit of 0, and died of
 * sprof's first write). What does not fit is lost, counted. */
static bool fits_file_size_limit(int fd, size_t size)
{
    struct rlimit limit;
    if (syscall(SYS_prlimit64, 0, RLIMIT_FSIZE, NULL, &limit) != 0 ||
        limit.rlim_cur == RLIM_INFINITY)
        return true;
    struct stat st;
    if (syscall(SYS_fstat, fd, &st) != 0 || st.st_size < 0)
        return false;
    return (uint64_t)st.st_size <= limit.rlim_cur && size <= limit.rlim_cur - (uint64_t)st.st_size;
}

static bool write_all(int fd, const uint8_t *at, size_t size)
{
    if (size > 0 && !fits_file_size_limit(fd, size))
        return false;
    while (size > 0) {
        ssize_t n = write(fd, at, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        at += n;
        size -= (size_t)n;
    }
    return true;
}

static void close_retired_fd(void)
{
    int fd = atomic_exchange(&retired_trace_fd, -1);
    if (fd >= 0)
        syscall(SYS_close, fd);
}

/* One open, write and close; or, with no descriptor free, into the stash.
 * Returns false if the bytes are lost. */
static bool append_per_open(const uint8_t *bytes, size_t size)
{
    if (atomic_flag_test_and_set(&stash_busy)) {
        /* Another append is under way (never waited for here). Writing
         * past it is safe only while nothing waits in the stash. */
        if (atomic_load(&stash_used) > 0)
            return false;
        int fd = open_trace_by_path();
        bool written = fd >= 0 && write_all(fd, bytes, size);
        if (fd >= 0)
            syscall(SYS_close, fd);
        return written;
    }
    bool kept;
    size_t used = atomic_load(&stash_used);
    int fd = open_trace_by_path();
    if (fd < 0) {
        kept = size <= STASH_BYTES - used;
        if (kept) {
            memcpy(stash + used, bytes, size);
            atomic_store(&stash_used, used + size);
        }
    } else {
        kept = write_all(fd, stash, used);
        if (kept)
            atomic_store(&stash_used, 0);
        kept = kept && write_all(fd, bytes, size);
        syscall(SYS_close, fd);
    }
    atomic_flag_clear(&stash_busy);
    return kept;
}

bool sprof_trace_append(const void *bytes, size_t size)
{
    atomic_fetch_add(&appends_in_flight, 1);
    int fd = trace_fd();
    bool written = fd == TRACE_PER_APPEND ? append_per_open(bytes, size)
                                          : fd >= 0 && write_all(fd, bytes, size);
    if (atomic_fetch_sub(&appends_in_flight, 1) == 1)
        close_retired_fd();
    if (!written) {
        atomic_fetch_add_explicit(&sprof_write_failures, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

bool sprof_trace_release_fd(void)
{
    int fd = atomic_load(&sprof_sampler.trace_fd);
    if (fd < 0 || !atomic_compare_exchange_strong(&sprof_sampler.trace_fd, &fd, TRACE_PER_APPEND))
        return false;
    atomic_store(&retired_trace_fd, fd);
    if (atomic_load(&appends_in_flight) == 0)
        close_retired_fd();
    return true;
}

void sprof_trace_drop_pending(void)
{
    atomic_store(&stash_used, 0);
    atomic_flag_clear(&stash_busy);
    atomic_store(&appends_in_flight, 0);
    atomic_store(&retired_trace_fd, -1);
}

bool sprof_trace_hold_fd(int spare_fd)
{
    if (atomic_load(&sprof_sampler.trace_fd) != TRACE_PER_APPEND)
        return true;
    int fd = open_trace_by_path();
    if (fd < 0 && spare_fd >= 0) {
        syscall(SYS_close, spare_fd);
        fd = open_trace_by_path();
    }
    if (fd < 0)
        return false;
    if (atomic_flag_test_and_set(&stash_busy)) {
        syscall(SYS_close, fd);
        return false;
    }
    bool written = write_all(fd, stash, atomic_load(&stash_used));
    atomic_store(&stash_used, 0);
    if (!written)
        atomic_fetch_add_explicit(&sprof_write_failures, 1, memory_order_relaxed);
    int expected = TRACE_PER_APPEND;
    if (!atomic_compare_exchange_strong(&sprof_sampler.trace_fd, &expected, fd))
        syscall(SYS_close, fd);
    atomic_flag_clear(&stash_busy);
    return true;
}

/* --- Record encoding into a thread's buffer ------------------------------ */

static void put_le(uint8_t *at, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

static uint8_t *begin_record(struct sprof_thread *t, uint32_t type, uint32_t payload)
{
    uint8_t *at = t->out + t->out_used;
    put_le(at, type, 4);
    put_le(at + 4, payload, 4);
    t->out_used += 8 + payload;
    return at + 8;
}

static void write_out(struct sprof_thread *t)
{
    if (t->out_used > 0)
        sprof_trace_append(t->out, t->out_used);
    t->out_used = 0;
}

static void ensure_room(struct sprof_thread *t, uint32_t bytes)
{
    if (t->out_size - t->out_used < bytes)
        write_out(t);
}

/* Room for a record's header and varint fixed part plus one entry of up to
 * three varints; records are closed early rather than split mid-entry. */
#define RECORD_START_ROOM (8 + 6 * SPROF_VARINT_MAX)

static uint8_t *start_compact_record(struct sprof_thread *t, uint32_t type)
{
    ensure_room(t, RECORD_START_ROOM);
    uint8_t *record = t->out + t->out_used;
    put_le(record, type, 4);
    return record;
}

static void close_compact_record(struct sprof_thread *t, uint8_t *record, uint8_t *end)
{
    put_le(record + 4, (uint64_t)(end - record - 8), 4);
    t->out_used = (uint32_t)(end - t->out);
}

static bool room_for_entry(const struct sprof_thread *t, const uint8_t *at)
{
    return (size_t)(t->out + t->out_size - at) >= 3 * SPROF_VARINT_MAX;
}

/* FRAMES records for the nodes made since the last ones. */
static void write_new_nodes(struct sprof_thread *t)
{
    while (t->nodes_written < t->node_count) {
        uint8_t *record = start_compact_record(t, SPROF_REC_FRAMES);
        uint32_t node = t->nodes_written + 1;
        uint8_t *at = record + 8;
        at += sprof_varint_put(at, t->table_id);
        at += sprof_varint_put(at, node);
        uint64_t previous = 0;
        for (; node <= t->node_count && room_for_entry(t, at); node++) {
            const struct sprof_frame_node *n = &t->nodes[node];
            uint32_t parent = n->parent_flags >> 1;
            uint32_t distance = parent ? node - parent : 0;
            at += sprof_varint_put(at, (uint64_t)distance << 1 | (n->parent_flags & 1));
            at += sprof_varint_put(at, sprof_zigzag((int64_t)(n->address - previous)));
            previous = n->address;
        }
        close_compact_record(t, record, at);
        t->nodes_written = node - 1;
    }
}

/* Shell sort: pending leaves in ascending order make the entries' deltas
 * small. In place, no recursion, bounded work. */
static void sort_pending(uint32_t *ids, uint32_t count)
{
    static const uint32_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        uint32_t gap = gaps[g];
        for (uint32_t i = gap; i < count; i++) {
            uint32_t value = ids[i];
            uint32_t j = i;
            for (; j >= gap && ids[j - gap] > value; j -= gap)
                ids[j] = ids[j - gap];
            ids[j] = value;
        }
    }
}

/* NODE_SAMPLES records for the samples taken since the last ones. */
static void write_pending_samples(struct sprof_thread *t)
{
    sort_pending(t->pending, t->pending_count);
    uint64_t period = sprof_sampler.period_ns;
    uint32_t i = 0;
    while (i < t->pending_count) {
        uint8_t *record = start_compact_record(t, SPROF_REC_NODE_SAMPLES);
        uint8_t *at = record + 8;
        at += sprof_varint_put(at, t->table_id);
        at += sprof_varint_put(at, (uint32_t)t->tid);
        at += sprof_varint_put(at, period);
        uint32_t previous = 0;
        for (; i < t->pending_count && room_for_entry(t, at); i++) {
            uint32_t leaf = t->pending[i];
            struct sprof_frame_node *n = &t->nodes[leaf];
            bool has_weight = n->pending_weight_ns != (uint64_t)n->pending_samples * period;
            bool more = has_weight || n->pending_samples != 1;
            at += sprof_varint_put(at, (uint64_t)(leaf - previous) << 1 | more);
            if (more)
                at += sprof_varint_put(at, (uint64_t)n->pending_samples << 1 | has_weight);
            if (has_weight)
                at += sprof_varint_put(at, n->pending_weight_ns);
            previous = leaf;
            n->pending_samples = 0;
            n->pending_weight_ns = 0;
        }
        close_compact_record(t, record, at);
    }
    t->pending_count = 0;
}

void sprof_thread_flush(struct sprof_thread *t)
{
    write_new_nodes(t);
    write_pending_samples(t);
    write_out(t);
    t->last_flush_ns = now_ns();
}

/* Makes [0, count) of a reserved array read-write, growing by doubling.
 * mprotect is a plain system call. False when the kernel refuses (the
 * commit limit): the caller then treats the table as full. */
static bool make_usable(void *array, size_t element_size, uint32_t *usable, uint32_t count,
                        uint32_t limit)
{
    if (count <= *usable)
        return true;
    uint32_t next = *usable ? *usable : 4096;
    while (next < count)
        next *= 2;
    if (next > limit)
        next = limit;
    size_t page = 4096;
    size_t bytes = ((size_t)next * element_size + page - 1) & ~(page - 1);
    if (mprotect(array, bytes, PROT_READ | PROT_WRITE) != 0)
        return false;
    *usable = next;
    return true;
}

/* Starts a new, empty frame table; the index shrinks back to its first
 * size so a thread state reused by a small thread touches little. */
static void start_new_table(struct sprof_thread *t)
{
    t->table_id = atomic_fetch_add_explicit(&sprof_next_table_id, 1, memory_order_relaxed) + 1;
    t->node_count = 0;
    t->nodes_written = 0;
    t->index_capacity = t->index_max < INDEX_FIRST_CAPACITY ? t->index_max : INDEX_FIRST_CAPACITY;
    if (!make_usable(t->node_index, sizeof *t->node_index, &t->index_usable, t->index_capacity,
                     t->index_max)) {
        t->index_capacity = 0; /* never room: every sample is lost, counted */
        return;
    }
    memset(t->node_index, 0, t->index_capacity * sizeof *t->node_index);
    t->pending_count = 0;
    t->path_depth = 0;
}

void sprof_thread_reset_buffers(struct sprof_thread *t)
{
    start_new_table(t);
    t->out_used = 0;
}

void sprof_thread_write_record(struct sprof_thread *t, uint64_t cpu_ns, const char *name)
{
    uint32_t name_length = 0;
    while (name && name[name_length] && name_length < 64)
        name_length++;
    uint32_t payload = 32 + 4 + name_length;
    ensure_room(t, 8 + payload);
    uint8_t *at = begin_record(t, SPROF_REC_THREAD, payload);
    put_le(at, (uint32_t)t->tid, 4);
    put_le(at + 4, 0, 4);
    put_le(at + 8, cpu_ns > t->start_cpu_ns ? cpu_ns - t->start_cpu_ns : 0, 8);
    put_le(at + 16, atomic_load(&t->samples), 8);
    put_le(at + 24, atomic_load(&t->weight_ns), 8);
    put_le(at + 32, name_length, 4);
    for (uint32_t i = 0; i < name_length; i++)
        at[36 + i] = (uint8_t)name[i];
    write_out(t);
}

bool sprof_trace_append_summary(const struct sprof_summary_values *v)
{
    uint8_t record[8 + 80];
    put_le(record, SPROF_REC_SUMMARY, 4);
    put_le(record + 4, 80, 4);
    const uint64_t fields[] = {v->wall_ns,     v->user_ns,    v->system_ns,
                               0 /* no profiler thread: its cost is in the program's */,
                               v->max_rss_kb,  atomic_load(&sprof_total_samples),
                               atomic_load(&sprof_total_weight_ns),
                               atomic_load(&sprof_lost_samples),
                               atomic_load(&sprof_truncated_stacks)};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        put_le(record + 8 + 8 * i, fields[i], 8);
    put_le(record + 8 + 72, v->threads, 4);
    put_le(record + 8 + 76, 0, 4);
    return sprof_trace_append(record, sizeof record);
}

bool sprof_trace_append_end(void)
{
    uint8_t record[8];
    put_le(record, SPROF_REC_END, 4);
    put_le(record + 4, 0, 4);
    return sprof_trace_append(record, sizeof record);
}

/* --- The frame tree -------------------------------------------------------- */

static uint32_t node_hash(uint32_t parent_flags, uint64_t address)
{
    uint64_t hash = (address ^ ((uint64_t)parent_flags << 40 | parent_flags)) * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(hash >> 32);
}

static void index_insert(struct sprof_thread *t, uint32_t node)
{
    const struct sprof_frame_node *n = &t->nodes[node];
    uint32_t mask = t->index_capacity - 1;
    uint32_t at = node_hash(n->parent_flags, n->address) & mask;
    while (t->node_index[at])
        at = (at + 1) & mask;
    t->node_index[at] = node;
}

/* Doubles the index, at most to index_max, which keeps it at most half full. */
static void grow_index(struct sprof_thread *t)
{
    t->index_capacity *= 2;
    memset(t->node_index, 0, t->index_capacity * sizeof *t->node_index);
    for (uint32_t node = 1; node <= t->node_count; node++)
        index_insert(t, node);
}

/* Room for count more nodes, the index staying at most 3/4 full (half,
 * while it can still grow), so probing always ends. */
static bool make_room(struct sprof_thread *t, uint32_t count)
{
    if (t->index_capacity == 0 || t->node_capacity - t->node_count < count)
        return false;
    uint32_t need = t->node_count + count;
    if (!make_usable(t->nodes, sizeof *t->nodes, &t->nodes_usable, need + 1,
                     t->node_capacity + 1))
        return false;
    while ((uint64_t)need * 2 > t->index_capacity && t->index_capacity < t->index_max &&
           make_usable(t->node_index, sizeof *t->node_index, &t->index_usable,
                       t->index_capacity * 2, t->index_max))
        grow_index(t);
    return (uint64_t)need * 4 <= (uint64_t)t->index_capacity * 3;
}

/* The node for (parent, address), made if new. The caller made room. */
static uint32_t find_or_add_node(struct sprof_thread *t, uint32_t parent_flags, uint64_t address)
{
    uint32_t mask = t->index_capacity - 1;
    uint32_t at = node_hash(parent_flags, address) & mask;
    for (uint32_t node; (node = t->node_index[at]) != 0; at = (at + 1) & mask) {
        if (t->nodes[node].address == address && t->nodes[node].parent_flags == parent_flags)
            return node;
    }
    uint32_t node = ++t->node_count;
    t->nodes[node] = (struct sprof_frame_node){address, parent_flags, 0, 0};
    t->node_index[at] = node;
    return node;
}

/* The leaf node of a stack (pcs leaf first), adding what the tree lacks;
 * 0 when there is no memory for it. Starts from the previous sample's path
 * where the two share callers. */
static uint32_t record_stack(struct sprof_thread *t, const uint64_t *pcs, uint32_t depth,
                             bool truncated)
{
    if (!make_room(t, depth)) {
        /* Full: write everything out and start a new table. The nodes
         * already written stay valid under the old table's id. */
        sprof_thread_flush(t);
        start_new_table(t);
        if (!make_room(t, depth))
            return 0; /* no memory for even one stack */
    }
    uint32_t shared = 0;
    if (t->path_truncated == truncated) {
        uint32_t limit = depth < t->path_depth ? depth : t->path_depth;
        while (shared < limit && t->path_addresses[shared] == pcs[depth - 1 - shared])
            shared++;
    }
    uint32_t node = shared > 0 ? t->path_nodes[shared - 1] : 0;
    for (uint32_t k = shared; k < depth; k++) {
        uint64_t address = pcs[depth - 1 - k];
        node = find_or_add_node(t, node << 1 | (truncated && k == 0), address);
        t->path_addresses[k] = address;
        t->path_nodes[k] = node;
    }
    t->path_depth = depth;
    t->path_truncated = truncated;
    return node;
}

/* --- Unwinding ----------------------------------------------------------- */

static uint64_t interrupted_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
    return (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uint64_t)uc->uc_mcontext.pc;
#else
#error "sprof: add the program counter of ucontext_t for this architecture"
#endif
}

/* The slow path: a cursor started from the signal's context. Used when the
 * cached fast path did not reach the interrupted frame. */
static uint32_t unwind_with_cursor(ucontext_t *uc, uint64_t *pcs, uint32_t max_depth,
                                   bool *truncated)
{
    unw_cursor_t cursor;
    uint32_t depth = 0;
    if (unw_init_local2(&cursor, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0)
        return 0;
    int more;
    do {
        unw_word_t ip;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        pcs[depth++] = ip;
        more = unw_step(&cursor) > 0;
    } while (more && depth < max_depth);
    *truncated = depth == max_depth && more && unw_step(&cursor) > 0;
    return depth;
}

/* Calls into the loader's list under way in this thread (sample_handler.h). */
static __thread volatile sig_atomic_t loader_calls __attribute__((tls_model("initial-exec")));

void sprof_sampler_loader_enter(void)
{
    loader_calls++;
}

void sprof_sampler_loader_leave(void)
{
    loader_calls--;
}

/* Code whose unwind rules do not hold at every instruction: libgcc's
 * unwinder (_Unwind_RaiseException and its helpers, which move the stack
 * under their own rules to reach a handler) sent libunwind's reads astray
 * (Rust programs panicking in a loop crashed). Set in normal context
 * (sprof_sampler_note_unsafe_code), once; [1] is set last. */
static _Atomic uintptr_t unsafe_code[2];

static bool unwinding_is_safe_at(uint64_t pc)
{
    return !(pc >= atomic_load_explicit(&unsafe_code[0], memory_order_relaxed) &&
             pc < atomic_load_explicit(&unsafe_code[1], memory_order_relaxed));
}

void sprof_sampler_note_unsafe_code(void)
{
    uintptr_t range[2];
    if (atomic_load(&unsafe_code[1]) || !sprof_code_segment("libgcc_s.so", 0, range))
        return;
    atomic_store(&unsafe_code[0], range[0]);
    atomic_store(&unsafe_code[1], range[1]);
}

/* Fills pcs leaf first, with libunwind: its cached fast path from this
 * handler, or a cursor from the signal's context when that did not reach
 * the interrupted frame. A fault inside (caught by the guard of a signal
 * the program left at its default action) ends it: 0, marked cut. */
__attribute__((noinline)) static uint32_t unwind_guarded(struct sprof_thread *t, ucontext_t *uc,
                                                         uint64_t pc, uint64_t *pcs,
                                                         uint32_t max_depth, bool *truncated)
{
    sigjmp_buf escape;
    if (sigsetjmp(escape, 0)) {
        sprof_signals_unwind_escaped(uc);
        atomic_fetch_add_explicit(&sprof_unwind_faults, 1, memory_order_relaxed);
        *truncated = true;
        return 0;
    }
    sprof_signals_unwind_escape(&escape);
    void **frames = t->scratch_frames;
    int count = unw_backtrace(frames, (int)max_depth + HANDLER_FRAMES_MAX + 1);
    int start = -1;
    for (int i = 0; i < count && i < HANDLER_FRAMES_MAX; i++) {
        if ((uint64_t)(uintptr_t)frames[i] == pc) {
            start = i;
            break;
        }
    }
    uint32_t depth;
    *truncated = false;
    if (start >= 0) {
        uint32_t available = (uint32_t)(count - start);
        depth = available > max_depth ? max_depth : available;
        *truncated = available > max_depth;
        for (uint32_t i = 0; i < depth; i++)
            pcs[i] = (uint64_t)(uintptr_t)frames[start + (int)i];
    } else {
        depth = unwind_with_cursor(uc, pcs, max_depth, truncated);
    }
    sprof_signals_unwind_escape(NULL);
    return depth;
}

/* Fills pcs leaf first; entries after the leaf are return addresses minus
 * one. Returns the depth (at least 1). The stack is cut at the interrupted
 * address, its callers unknown, when SPROF_DEPTH=1 asks for no unwinding
 * (a flat profile for the cost of the signal), in code libunwind cannot be
 * trusted in, inside dl_iterate_phdr, while a fork waits, and when the
 * unwind faults or finds nothing. */
static uint32_t capture_stack(struct sprof_thread *t, ucontext_t *uc, uint64_t *pcs,
                              uint32_t max_depth, bool *truncated)
{
    uint64_t pc = interrupted_pc(uc);
    pcs[0] = pc;
    *truncated = true;
    if (max_depth == 1 || !unwinding_is_safe_at(pc) || loader_calls > 0)
        return 1;
    /* No unwind starts while a fork is being made, and the fork waits for
     * those under way: a child must not inherit libunwind's locks (or the
     * loader's) held by another thread's unwind. */
    atomic_fetch_add(&sprof_unwinds_running, 1);
    if (atomic_load(&sprof_fork_waiting)) {
        atomic_fetch_sub(&sprof_unwinds_running, 1);
        return 1;
    }
    /* libunwind blocks all signals around each of its locks, with two
     * system calls each time, several times per frame it has not cached:
     * inside the window, where the handler's sa_mask has blocked them
     * already, those calls are answered without the kernel (signals.h). */
    /* Sequentially consistent: set before libunwind can read the numbers
     * of its pipe, which fd_guard.c may be taking back. */
    atomic_store(&t->unwinding, 1);
    sprof_signals_unwind_begin();
    uint32_t depth = unwind_guarded(t, uc, pc, pcs, max_depth, truncated);
    sprof_signals_unwind_end();
    atomic_store_explicit(&t->unwinding, 0, memory_order_release);
    atomic_fetch_sub(&sprof_unwinds_running, 1);
    if (depth == 0) {
        pcs[0] = pc;
        depth = 1;
    }
    for (uint32_t i = 1; i < depth; i++) {
        if (pcs[i] != 0)
            pcs[i] -= 1;
    }
    return depth;
}

/* --- The handler --------------------------------------------------------- */

/* The CPU time this sample stands for. */
static uint64_t sample_weight(struct sprof_thread *t, const siginfo_t *info)
{
    uint64_t period = sprof_sampler.period_ns;
    if (t->perf_fd >= 0) {
        uint64_t count;
        if (sprof_sampler.counter_weights &&
            read(t->perf_fd, &count, sizeof count) == (ssize_t)sizeof count &&
            count > t->last_count) {
            /* The counter's own reading: exact even when signals merged. */
            uint64_t weight = count - t->last_count;
            t->last_count = count;
            return weight;
        }
        return period;
    }
    /* CPU-time timers fire on the tick; overrun counts the periods skipped. */
    uint64_t overrun = info->si_overrun > 0 ? (uint64_t)info->si_overrun : 0;
    return period * (1 + overrun);
}

/* Writes out, from time to time, the samples of threads that have stopped
 * running (blocked, sleeping), so a killed program loses little. */
static void sweep_idle_threads(struct sprof_thread *self, uint64_t now)
{
    uint64_t last = atomic_load_explicit(&last_sweep_ns, memory_order_relaxed);
    if (now - last < sprof_sampler.flush_interval_ns ||
        !atomic_compare_exchange_strong(&last_sweep_ns, &last, now))
        return;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (t == self || atomic_load(&t->state) != SPROF_STATE_ACTIVE)
            continue;
        int idle = SPROF_IDLE;
        if (!atomic_compare_exchange_strong(&t->busy, &idle, SPROF_BUSY_FLUSHER))
            continue;
        if ((t->pending_count > 0 || t->out_used > 0) &&
            now - t->last_flush_ns >= sprof_sampler.flush_interval_ns)
            sprof_thread_flush(t);
        atomic_store_explicit(&t->busy, SPROF_IDLE, memory_order_release);
    }
}

/* noinline: keeps the handler's own frame small, so that the stack check
 * runs before any large frame is pushed. */
__attribute__((noinline)) static void take_sample(struct sprof_thread *t, const siginfo_t *info,
                                                  ucontext_t *uc)
{
    uint64_t weight = sample_weight(t, info);
    uint64_t *pcs = t->scratch_pcs;
    bool truncated;
    uint32_t depth = capture_stack(t, uc, pcs, sprof_sampler.max_depth, &truncated);

    int idle = SPROF_IDLE;
    if (!atomic_compare_exchange_strong(&t->busy, &idle, SPROF_BUSY_HANDLER)) {
        /* Being written out by another thread right now: never wait here. */
        atomic_fetch_add_explicit(&sprof_lost_samples, 1, memory_order_relaxed);
        return;
    }
    uint32_t leaf = record_stack(t, pcs, depth, truncated);
    if (leaf == 0) {
        atomic_store_explicit(&t->busy, SPROF_IDLE, memory_order_release);
        atomic_fetch_add_explicit(&sprof_lost_samples, 1, memory_order_relaxed);
        return;
    }
    struct sprof_frame_node *node = &t->nodes[leaf];
    if (node->pending_samples == 0) {
        if (t->pending_count == t->pending_capacity)
            sprof_thread_flush(t);
        t->pending[t->pending_count++] = leaf;
    }
    node->pending_samples++;
    node->pending_weight_ns += weight;
    uint64_t now = now_ns();
    if (now - t->last_flush_ns >= sprof_sampler.flush_interval_ns)
        sprof_thread_flush(t);
    atomic_store_explicit(&t->busy, SPROF_IDLE, memory_order_release);

    atomic_fetch_add_explicit(&t->samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->weight_ns, weight, memory_order_relaxed);
    atomic_fetch_add_explicit(&sprof_total_samples, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sprof_total_weight_ns, weight, memory_order_relaxed);
    if (truncated)
        atomic_fetch_add_explicit(&sprof_truncated_stacks, 1, memory_order_relaxed);
    sweep_idle_threads(t, now);
}

/* Recognises our signals from siginfo alone, so that one still pending when
 * a thread's timer was stopped is swallowed, not forwarded. perf_event
 * signals carry a POLL_* code; our POSIX timers carry &sprof_sampler. */
static bool signal_is_ours(const struct sprof_thread *t, const siginfo_t *info)
{
    if (t && t->warming_up && info->si_code == SI_TKILL && info->si_pid == getpid())
        return true;
    if (info->si_code == SI_TIMER)
        return info->si_value.sival_ptr == (void *)&sprof_sampler;
    return info->si_code >= POLL_IN && info->si_code <= POLL_HUP;
}

/* A sample is taken only for the thread's own live timer. */
static bool signal_is_sample(const struct sprof_thread *t, const siginfo_t *info)
{
    if (t->perf_fd >= 0)
        return info->si_code != SI_TIMER && info->si_fd == t->perf_signal_fd;
    return t->has_timer && info->si_code == SI_TIMER;
}

/* A signal that is not a sample goes where it would have gone without us. */
__attribute__((noinline)) static void forward(int signal_number, siginfo_t *info,
                                              void *context)
{
    const struct sigaction *previous = &sprof_sampler.previous;
    /* SIG_DFL and SIG_IGN whatever the flags, as the kernel reads them. */
    if (previous->sa_handler == SIG_IGN)
        return;
    if (previous->sa_handler == SIG_DFL) {
        /* Other than a sample, this signal kills by default: let it. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sprof_real_sigaction(signal_number, &dfl, NULL);
        raise(signal_number);
        return;
    }
    struct sigaction theirs = *previous;
    if (theirs.sa_flags & SA_RESETHAND) {
        /* As the kernel does on delivery: the default action from now on,
         * for the next signal and in what sigaction reports. */
        sprof_sampler.previous.sa_handler = SIG_DFL;
    }
    sprof_signals_mask_as_kernel_would(signal_number, context, &theirs);
    if (theirs.sa_flags & SA_SIGINFO)
        theirs.sa_sigaction(signal_number, info, context);
    else
        theirs.sa_handler(signal_number);
}

__attribute__((noinline)) static void warm_up_unwinder(struct sprof_thread *t, ucontext_t *uc)
{
    bool truncated;
    capture_stack(t, uc, t->scratch_pcs, sprof_sampler.max_depth, &truncated);
    t->warming_up = false;
}

enum stack_room { STACK_ROOMY, STACK_SHORT, STACK_UNKNOWN };

/* Where this handler runs. On the thread's own stack, or an alternate
 * signal stack, with room to unwind: roomy. On the thread's own stack
 * with less than UNWIND_STACK_NEEDED left (threads made with 16 KB stacks,
 * a main thread under `ulimit -s 64`, deep recursion near the limit):
 * short; libunwind overran such stacks. On an alternate stack with too
 * little (programs give their handlers small ones: CPython's faulthandler
 * 16 KB, Rust's about 8 KB; ours runs there too, SA_ONSTACK): short.
 * Anywhere else (a coroutine's stack from makecontext, of any size, maybe
 * 8 KB): unknown. Short and unknown samples are taken on a private stack.
 * A system call only when off the thread's stack. */
static enum stack_room stack_room(const struct sprof_thread *t)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (here >= t->stack_low && here < t->stack_high)
        return here - t->stack_low < UNWIND_STACK_NEEDED ? STACK_SHORT : STACK_ROOMY;
    stack_t alternate;
    if (sigaltstack(NULL, &alternate) == 0 && (alternate.ss_flags & SS_ONSTACK))
        return here - (uintptr_t)alternate.ss_sp < HANDLER_STACK_NEEDED ? STACK_SHORT
                                                                        : STACK_ROOMY;
    return STACK_UNKNOWN;
}

/* A thread's private stack: room for libunwind's slowest paths. */
#define PRIVATE_STACK_SIZE (64 * 1024)
/* Read once at start-up (sprof_sampler_install). */
static size_t page_size = 4096;

uintptr_t sprof_map_guarded_stack(size_t size, int extra_flags)
{
    uint8_t *low = mmap(NULL, size + page_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | extra_flags, -1, 0);
    if (low == MAP_FAILED)
        return 0;
    mprotect(low, page_size, PROT_NONE);
    return (uintptr_t)(low + page_size + size);
}

void sprof_unmap_guarded_stack(uintptr_t top, size_t size)
{
    munmap((void *)(top - size - page_size), size + page_size);
}

static bool make_private_stack(struct sprof_thread *t)
{
    if (!t->private_stack_top)
        t->private_stack_top = sprof_map_guarded_stack(PRIVATE_STACK_SIZE, 0);
    return t->private_stack_top != 0;
}

/* sprof_call_on_stack (sample_handler.h): its frame is a plain frame-
 * pointer frame, so unwinding from fn crosses back to the handler. */
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl sprof_call_on_stack\n"
        ".hidden sprof_call_on_stack\n"
        ".type sprof_call_on_stack, @function\n"
        "sprof_call_on_stack:\n"
        ".cfi_startproc\n"
        "pushq %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "movq %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "andq $-16, %rdx\n"
        "movq %rdx, %rsp\n"
        "movq %rdi, %rax\n"
        "movq %rsi, %rdi\n"
        "callq *%rax\n"
        "movq %rbp, %rsp\n"
        "popq %rbp\n"
        ".cfi_def_cfa %rsp, 8\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size sprof_call_on_stack, .-sprof_call_on_stack\n");
#define HAVE_CALL_ON_STACK 1
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl sprof_call_on_stack\n"
        ".hidden sprof_call_on_stack\n"
        ".type sprof_call_on_stack, %function\n"
        "sprof_call_on_stack:\n"
        ".cfi_startproc\n"
        "stp x29, x30, [sp, #-16]!\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset x29, -16\n"
        ".cfi_offset x30, -8\n"
        "mov x29, sp\n"
        ".cfi_def_cfa_register x29\n"
        "and x2, x2, #-16\n"
        "mov sp, x2\n"
        "mov x3, x0\n"
        "mov x0, x1\n"
        "blr x3\n"
        "mov sp, x29\n"
        "ldp x29, x30, [sp], #16\n"
        ".cfi_def_cfa sp, 0\n"
        "ret\n"
        ".cfi_endproc\n"
        ".size sprof_call_on_stack, .-sprof_call_on_stack\n");
#define HAVE_CALL_ON_STACK 1
#endif

struct sample_call {
    struct sprof_thread *t;
    const siginfo_t *info;
    ucontext_t *uc;
    int signal_number;
};

static void forward_called(void *arg)
{
    struct sample_call *call = arg;
    forward(call->signal_number, (siginfo_t *)call->info, call->uc);
}

/* Ours runs on the alternate signal stack where there is one (SA_ONSTACK);
 * a program's handler installed without SA_ONSTACK expects the stack it
 * interrupted, which may be far larger than that alternate stack: it runs
 * on the thread's private stack instead, where there is one. */
static void forward_on_fitting_stack(struct sprof_thread *t, int signal_number,
                                     siginfo_t *info, void *context)
{
#ifdef HAVE_CALL_ON_STACK
    stack_t alternate;
    if (t && !(sprof_sampler.previous.sa_flags & SA_ONSTACK) &&
        sprof_sampler.previous.sa_handler != SIG_IGN &&
        sprof_sampler.previous.sa_handler != SIG_DFL &&
        sigaltstack(NULL, &alternate) == 0 && (alternate.ss_flags & SS_ONSTACK) &&
        make_private_stack(t)) {
        struct sample_call call = {t, info, context, signal_number};
        sprof_call_on_stack(forward_called, &call, t->private_stack_top);
        return;
    }
#else
    (void)t;
#endif
    forward(signal_number, info, context);
}

static void take_sample(struct sprof_thread *t, const siginfo_t *info, ucontext_t *uc);

static void take_sample_called(void *arg)
{
    struct sample_call *call = arg;
    take_sample(call->t, call->info, call->uc);
}

/* A sample on a stack of unknown room is taken on the thread's private
 * stack; false (the sample lost) where that cannot be. */
__attribute__((noinline)) static bool take_sample_elsewhere(struct sprof_thread *t,
                                                            const siginfo_t *info,
                                                            ucontext_t *uc)
{
#ifdef HAVE_CALL_ON_STACK
    if (!make_private_stack(t))
        return false;
    struct sample_call call = {t, info, uc, 0};
    sprof_call_on_stack(take_sample_called, &call, t->private_stack_top);
    return true;
#else
    (void)t;
    (void)info;
    (void)uc;
    return false;
#endif
}

void sprof_sampler_on_signal(int signal_number, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    sprof_signals_handler_enter();
    struct sprof_thread *t = sprof_current_thread;
    if (!signal_is_ours(t, info)) {
        if (!sprof_signals_defer(signal_number, info, context))
            forward_on_fitting_stack(t, signal_number, info, context);
    } else if (!t) {
        /* A late signal of a stopped timer, or a thread we do not sample. */
    } else {
        enum stack_room room = stack_room(t);
        if (t->warming_up) {
            if (room == STACK_ROOMY)
                warm_up_unwinder(t, context);
            else
                t->warming_up = false;
        } else if (signal_is_sample(t, info)) {
            if (room == STACK_ROOMY)
                take_sample(t, info, context);
            else if (!take_sample_elsewhere(t, info, context))
                atomic_fetch_add_explicit(&sprof_lost_samples, 1, memory_order_relaxed);
        }
    }
    sprof_signals_handler_leave();
    errno = saved_errno;
}

bool sprof_sampler_owns(const siginfo_t *info)
{
    return signal_is_ours(NULL, info);
}

/* --- Start-up only: not called from the handler -------------------------- */

/* SA_ONSTACK: where a thread has an alternate signal stack, the kernel
 * writes the signal's frame there, not on whatever stack the thread runs on.
 * Go's goroutine stacks have no room or guard for it (cgo programs crashed),
 * and Go asks it of every handler not its own. But an alternate stack too
 * small for the frame itself makes the kernel kill the program; one seen,
 * sprof does without SA_ONSTACK (sprof_sampler_alternate_stack_set). */
static _Atomic bool use_alternate_stacks = true;
static _Atomic bool handler_installed;

static int install_handler(struct sigaction *previous)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = sprof_sampler_on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART | (atomic_load(&use_alternate_stacks) ? SA_ONSTACK : 0);
    /* The unwinding window's mask (signals.h): the kernel blocks it for
     * the whole handler, and restores the mask at sigreturn. */
    sprof_signals_window_mask(&action.sa_mask);
    return sprof_real_sigaction(sprof_sampler.signal_number, &action, previous) != 0 ? errno : 0;
}

/* An alternate stack smaller than this cannot take a signal's frame and
 * leave our handler room to move to its private stack. */
static size_t smallest_fitting_alternate_stack(void)
{
    size_t frame = (size_t)getauxval(AT_MINSIGSTKSZ);
    return (frame > 2048 ? frame : 2048) + 4096;
}

void sprof_sampler_alternate_stack_set(const stack_t *stack)
{
    if (!stack || (stack->ss_flags & SS_DISABLE) ||
        stack->ss_size >= smallest_fitting_alternate_stack() ||
        !atomic_exchange(&use_alternate_stacks, false))
        return;
    if (atomic_load(&handler_installed))
        install_handler(NULL);
}

int sprof_sampler_install(void)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0)
        page_size = (size_t)page;
    stack_t current;
    if (sigaltstack(NULL, &current) == 0)
        sprof_sampler_alternate_stack_set(&current);
    int error = install_handler(&sprof_sampler.previous);
    atomic_store(&handler_installed, error == 0);
    return error;
}

void sprof_sampler_warm_up(struct sprof_thread *t)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, sprof_sampler.signal_number);
    pthread_sigmask(SIG_UNBLOCK, &set, &old);
    t->warming_up = true;
    raise(sprof_sampler.signal_number);
    t->warming_up = false;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
