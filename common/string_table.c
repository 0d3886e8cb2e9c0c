#include "string_table.h"

#include <stdlib.h>
#include <string.h>

void sprof_string_table_init(struct sprof_string_table *table)
{
    memset(table, 0, sizeof *table);
    sprof_map_init(&table->by_hash);
}

void sprof_string_table_free(struct sprof_string_table *table)
{
    for (uint32_t i = 0; i < table->count; i++)
        free(table->texts[i]);
    free(table->texts);
    free(table->lengths);
    free(table->next_same_hash);
    sprof_map_free(&table->by_hash);
    sprof_string_table_init(table);
}

static int grow(struct sprof_string_table *table)
{
    uint32_t capacity = table->capacity ? table->capacity * 2 : 256;
    char **texts = realloc(table->texts, capacity * sizeof *texts);
    if (!texts)
        return -1;
    table->texts = texts;
    uint32_t *lengths = realloc(table->lengths, capacity * sizeof *lengths);
    if (!lengths)
        return -1;
    table->lengths = lengths;
    uint32_t *next = realloc(table->next_same_hash, capacity * sizeof *next);
    if (!next)
        return -1;
    table->next_same_hash = next;
    table->capacity = capacity;
    return 0;
}

uint32_t sprof_string_table_intern(struct sprof_string_table *table, const char *text,
                                   size_t length)
{
    if (!text || length > UINT32_MAX)
        return 0;
    uint64_t hash = sprof_hash_bytes(text, length);
    uint32_t first = 0;
    if (sprof_map_get(&table->by_hash, hash, &first)) {
        for (uint32_t id = first; id; id = table->next_same_hash[id - 1]) {
            if (table->lengths[id - 1] == length && memcmp(table->texts[id - 1], text, length) == 0)
                return id;
        }
    }
    if (table->count == table->capacity && grow(table) != 0)
        return 0;
    char *copy = malloc(length + 1);
    if (!copy)
        return 0;
    memcpy(copy, text, length);
    copy[length] = '\0';
    uint32_t id = table->count + 1;
    if (!sprof_map_put(&table->by_hash, hash, id)) {
        free(copy);
        return 0;
    }
    table->texts[id - 1] = copy;
    table->lengths[id - 1] = (uint32_t)length;
    table->next_same_hash[id - 1] = first;
    table->count++;
    return id;
}

const char *sprof_string_table_get(const struct sprof_string_table *table, uint32_t id)
{
    if (id == 0 || id > table->count)
        return "";
    return table->texts[id - 1];
}
