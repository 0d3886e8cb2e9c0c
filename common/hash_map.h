/* An open-addressing map from uint64 keys to uint32 values.
 *
 * Uses malloc: NOT async-signal-safe. Not thread-safe. Key 0 is allowed. */
#ifndef SPROF_HASH_MAP_H
#define SPROF_HASH_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sprof_map_slot {
    uint64_t key;
    uint32_t value;
    uint32_t used;
};

struct sprof_map {
    struct sprof_map_slot *slots;
    size_t capacity; /* a power of two, or 0 */
    size_t count;
};

void sprof_map_init(struct sprof_map *map);
void sprof_map_free(struct sprof_map *map);
/* Returns true and sets *value if key is present. */
bool sprof_map_get(const struct sprof_map *map, uint64_t key, uint32_t *value);
/* Inserts or replaces. Returns false only when memory runs out. */
bool sprof_map_put(struct sprof_map *map, uint64_t key, uint32_t value);
/* A well-mixed 64-bit hash of a 64-bit value. */
static inline uint64_t sprof_hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#endif
