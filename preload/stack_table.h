/* Deduplicates stacks: each distinct (addresses, flags) gets an id, and its
 * STACK record is written once. NOT async-signal-safe (malloc); used by the
 * writer thread under the writer lock, and at exit. */
#ifndef SPROF_STACK_TABLE_H
#define SPROF_STACK_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "hash_map.h"

struct sprof_stack_entry {
    uint64_t offset;         /* into addresses */
    uint32_t next_same_hash; /* id + 1 of another stack with this hash, 0 if none */
    uint16_t depth;
    uint16_t flags;
};

struct sprof_stack_table {
    uint64_t *addresses;
    size_t addresses_used, addresses_capacity;
    struct sprof_stack_entry *entries;
    uint32_t count, capacity;
    struct sprof_map by_hash; /* hash -> id + 1 of the newest stack with it */
};

#define SPROF_STACK_ID_NONE UINT32_MAX

struct sprof_encoder;

void sprof_stack_table_init(struct sprof_stack_table *table);
void sprof_stack_table_free(struct sprof_stack_table *table);
/* Returns the id of the stack, appending a STACK record to enc if it is new;
 * SPROF_STACK_ID_NONE when out of memory. */
uint32_t sprof_stack_table_intern(struct sprof_stack_table *table, const uint64_t *addresses,
                                  uint16_t depth, uint16_t flags, struct sprof_encoder *enc);

#endif
