#include "stack_table.h"

#include <stdlib.h>
#include <string.h>

#include "sprof/trace_format.h"
#include "string_table.h"
#include "trace_codec.h"

void sprof_stack_table_init(struct sprof_stack_table *table)
{
    memset(table, 0, sizeof *table);
    sprof_map_init(&table->by_hash);
}

void sprof_stack_table_free(struct sprof_stack_table *table)
{
    free(table->addresses);
    free(table->entries);
    sprof_map_free(&table->by_hash);
    sprof_stack_table_init(table);
}

static int reserve(struct sprof_stack_table *table, size_t depth)
{
    if (table->addresses_capacity - table->addresses_used < depth) {
        size_t capacity = table->addresses_capacity ? table->addresses_capacity * 2 : 4096;
        while (capacity - table->addresses_used < depth)
            capacity *= 2;
        uint64_t *addresses = realloc(table->addresses, capacity * sizeof *addresses);
        if (!addresses)
            return -1;
        table->addresses = addresses;
        table->addresses_capacity = capacity;
    }
    if (table->count == table->capacity) {
        uint32_t capacity = table->capacity ? table->capacity * 2 : 1024;
        struct sprof_stack_entry *entries = realloc(table->entries, capacity * sizeof *entries);
        if (!entries)
            return -1;
        table->entries = entries;
        table->capacity = capacity;
    }
    return table->count == SPROF_STACK_ID_NONE - 1 ? -1 : 0;
}

uint32_t sprof_stack_table_intern(struct sprof_stack_table *table, const uint64_t *addresses,
                                  uint16_t depth, uint16_t flags, struct sprof_encoder *enc)
{
    uint64_t hash = sprof_hash_bytes(addresses, depth * sizeof *addresses) ^ flags;
    uint32_t first = 0;
    if (sprof_map_get(&table->by_hash, hash, &first)) {
        for (uint32_t link = first; link; link = table->entries[link - 1].next_same_hash) {
            const struct sprof_stack_entry *e = &table->entries[link - 1];
            if (e->depth == depth && e->flags == flags &&
                memcmp(table->addresses + e->offset, addresses, depth * sizeof *addresses) == 0)
                return link - 1;
        }
    }
    if (reserve(table, depth) != 0)
        return SPROF_STACK_ID_NONE;
    uint32_t id = table->count;
    if (!sprof_map_put(&table->by_hash, hash, id + 1))
        return SPROF_STACK_ID_NONE;
    struct sprof_stack_entry *e = &table->entries[id];
    e->offset = table->addresses_used;
    e->depth = depth;
    e->flags = flags;
    e->next_same_hash = first;
    memcpy(table->addresses + e->offset, addresses, depth * sizeof *addresses);
    table->addresses_used += depth;
    table->count++;

    sprof_encoder_begin_record(enc, SPROF_REC_STACK);
    sprof_encoder_u32(enc, id);
    sprof_encoder_u16(enc, depth);
    sprof_encoder_u16(enc, flags);
    for (uint16_t i = 0; i < depth; i++)
        sprof_encoder_u64(enc, addresses[i]);
    sprof_encoder_end_record(enc);
    return id;
}
