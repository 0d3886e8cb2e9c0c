/* Interns strings: equal text gets the same id, ids count up from 1 (0 is
 * SPROF_STRING_NONE). Uses malloc: NOT async-signal-safe. Not thread-safe. */
#ifndef SPROF_STRING_TABLE_H
#define SPROF_STRING_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "hash_map.h"

struct sprof_string_table {
    char **texts;   /* texts[id - 1], NUL-terminated copies */
    uint32_t *lengths;
    uint32_t count;
    uint32_t capacity;
    struct sprof_map by_hash; /* hash -> id of the first text with that hash */
    uint32_t *next_same_hash; /* chains ids whose texts share a hash */
};

void sprof_string_table_init(struct sprof_string_table *table);
void sprof_string_table_free(struct sprof_string_table *table);
/* Returns the id of text[0..length), adding it if new; 0 when out of memory
 * or for a NULL text. */
uint32_t sprof_string_table_intern(struct sprof_string_table *table, const char *text,
                                   size_t length);
/* Returns the text for id, or "" for 0 and unknown ids. */
const char *sprof_string_table_get(const struct sprof_string_table *table, uint32_t id);

/* FNV-1a, for hashing byte strings. */
static inline uint64_t sprof_hash_bytes(const void *bytes, size_t size)
{
    const unsigned char *p = bytes;
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ p[i]) * 0x100000001b3ULL;
    return hash;
}

#endif
