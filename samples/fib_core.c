#include "fib_core.h"

#include <string.h>

#include "sample_util.h"

_Thread_local uint64_t fib_naive_calls;

/* Out of line and not cloned, so the profile shows it by this name. The
 * argument comes from the command line at run time, so nothing can be
 * folded. Left alone, GCC -O2 turns the second call into a loop (tail
 * recursion with an accumulator); the empty asm after the addition takes
 * that call out of tail position, so both calls stay real calls, as in the
 * Python original. */
SAMPLE_NOINLINE uint64_t fib_naive(unsigned n)
{
    fib_naive_calls++;
    if (n < 2)
        return n;
    uint64_t sum = fib_naive(n - 1) + fib_naive(n - 2);
    __asm__ volatile("" : "+r"(sum));
    return sum;
}

void fib_cache_init(struct fib_cache *cache, unsigned capacity)
{
    pthread_mutex_init(&cache->lock, NULL);
    cache->capacity = capacity > FIB_CACHE_MAX ? FIB_CACHE_MAX : capacity;
    fib_cache_clear(cache);
}

void fib_cache_clear(struct fib_cache *cache)
{
    pthread_mutex_lock(&cache->lock);
    cache->used = 0;
    cache->newest = cache->oldest = -1;
    for (unsigned k = 0; k <= FIB_MAX_N; k++)
        cache->slot_of[k] = -1;
    cache->hits = cache->misses = cache->evictions = 0;
    pthread_mutex_unlock(&cache->lock);
}

void fib_cache_destroy(struct fib_cache *cache)
{
    pthread_mutex_destroy(&cache->lock);
}

/* The recency list, newest first. Callers hold the lock. */
static void unlink_slot(struct fib_cache *cache, int slot)
{
    struct fib_cache_slot *s = &cache->slots[slot];
    if (s->newer >= 0)
        cache->slots[s->newer].older = s->older;
    else
        cache->newest = s->older;
    if (s->older >= 0)
        cache->slots[s->older].newer = s->newer;
    else
        cache->oldest = s->newer;
}

static void push_newest(struct fib_cache *cache, int slot)
{
    struct fib_cache_slot *s = &cache->slots[slot];
    s->newer = -1;
    s->older = cache->newest;
    if (cache->newest >= 0)
        cache->slots[cache->newest].newer = slot;
    cache->newest = slot;
    if (cache->oldest < 0)
        cache->oldest = slot;
}

static bool cache_lookup(struct fib_cache *cache, unsigned n, uint64_t *value)
{
    pthread_mutex_lock(&cache->lock);
    int slot = cache->slot_of[n];
    if (slot >= 0) {
        *value = cache->slots[slot].value;
        if (cache->newest != slot) {
            unlink_slot(cache, slot);
            push_newest(cache, slot);
        }
        cache->hits++;
    } else {
        cache->misses++;
    }
    pthread_mutex_unlock(&cache->lock);
    return slot >= 0;
}

/* Like CPython's bounded lru_cache: if another caller stored n meanwhile,
 * keep that entry; otherwise take a free slot or evict the oldest. */
static void cache_insert(struct fib_cache *cache, unsigned n, uint64_t value)
{
    pthread_mutex_lock(&cache->lock);
    if (cache->capacity > 0 && cache->slot_of[n] < 0) {
        int slot;
        if (cache->used < cache->capacity) {
            slot = (int)cache->used++;
        } else {
            slot = cache->oldest;
            unlink_slot(cache, slot);
            cache->slot_of[cache->slots[slot].key] = -1;
            cache->evictions++;
        }
        cache->slots[slot].key = n;
        cache->slots[slot].value = value;
        cache->slot_of[n] = slot;
        push_newest(cache, slot);
    }
    pthread_mutex_unlock(&cache->lock);
}

/* The lock is taken for the lookup and for the insert, never across the
 * recursive calls: a plain mutex held there would deadlock on the first
 * recursive lookup, and a recursive mutex would let only one thread compute
 * at a time. The price: two threads that miss the same n at the same moment
 * both compute it (a pure function, so the results agree) and the second
 * insert is dropped. This is also what Python's lru_cache does. */
SAMPLE_NOINLINE uint64_t fib_memo(struct fib_cache *cache, unsigned n,
                                  struct fib_memo_counts *counts)
{
    counts->calls++;
    uint64_t value;
    if (cache_lookup(cache, n, &value))
        return value;
    counts->misses++;
    if (n < 2) {
        value = n;
    } else {
        /* Sequenced, as in Python: fib(n-1) first, then fib(n-2). */
        uint64_t a = fib_memo(cache, n - 1, counts);
        uint64_t b = fib_memo(cache, n - 2, counts);
        value = a + b;
    }
    cache_insert(cache, n, value);
    return value;
}
