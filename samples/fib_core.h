/* Fibonacci two ways, shared by the fib and threads samples:
 *   fib_naive  the plain double recursion, exponential time;
 *   fib_memo   the same recursion behind a bounded LRU cache, the C version
 *              of Python's @functools.lru_cache(maxsize=128). */
#ifndef SPROF_FIB_CORE_H
#define SPROF_FIB_CORE_H

#include <pthread.h>
#include <stdint.h>

/* fib(93) = 12200160415121876738 is the largest that fits in uint64_t. */
#define FIB_MAX_N 93u
/* The table never holds more than this (and the seed's maxsize is 128). */
#define FIB_CACHE_MAX 128u
#define FIB_CACHE_DEFAULT 128u

/* Calls of fib_naive made by the calling thread (thread-local, so threads
 * do not share, or fight over, one counter). */
extern _Thread_local uint64_t fib_naive_calls;

uint64_t fib_naive(unsigned n);

/* A fixed-size table of at most `capacity` results with least-recently-used
 * eviction. Keys are 0..FIB_MAX_N, so key -> slot is a direct index; the
 * recency order is a doubly linked list through the slots.
 *
 * The table is safe to share between threads: every lookup and insert holds
 * `lock`, and the lock is never held across the recursion (see fib_memo). */
struct fib_cache {
    pthread_mutex_t lock;
    unsigned capacity; /* 0..FIB_CACHE_MAX; 0 caches nothing, like maxsize=0 */
    unsigned used;
    int newest, oldest; /* slot indexes, -1 when empty */
    int slot_of[FIB_MAX_N + 1];
    struct fib_cache_slot {
        unsigned key;
        int newer, older;
        uint64_t value;
    } slots[FIB_CACHE_MAX];
    uint64_t hits, misses, evictions;
};

/* Per-caller counts of one or more fib_memo computations. */
struct fib_memo_counts {
    uint64_t calls;  /* calls of fib_memo, cache hits included */
    uint64_t misses; /* calls that had to compute (the cached function ran) */
};

void fib_cache_init(struct fib_cache *cache, unsigned capacity);
void fib_cache_clear(struct fib_cache *cache);
void fib_cache_destroy(struct fib_cache *cache);

/* fib(n) for n <= FIB_MAX_N, memoized in cache. */
uint64_t fib_memo(struct fib_cache *cache, unsigned n, struct fib_memo_counts *counts);

#endif
