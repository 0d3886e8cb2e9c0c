#include "hash_map.h"

#include <stdlib.h>

void sprof_map_init(struct sprof_map *map)
{
    map->slots = NULL;
    map->capacity = 0;
    map->count = 0;
}

void sprof_map_free(struct sprof_map *map)
{
    free(map->slots);
    sprof_map_init(map);
}

static struct sprof_map_slot *find_slot(struct sprof_map_slot *slots, size_t capacity, uint64_t key)
{
    size_t mask = capacity - 1;
    size_t at = (size_t)sprof_hash64(key) & mask;
    while (slots[at].used && slots[at].key != key)
        at = (at + 1) & mask;
    return &slots[at];
}

bool sprof_map_get(const struct sprof_map *map, uint64_t key, uint32_t *value)
{
    if (!map->capacity)
        return false;
    struct sprof_map_slot *slot = find_slot(map->slots, map->capacity, key);
    if (!slot->used)
        return false;
    *value = slot->value;
    return true;
}

static bool grow(struct sprof_map *map)
{
    size_t capacity = map->capacity ? map->capacity * 2 : 64;
    struct sprof_map_slot *slots = calloc(capacity, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < map->capacity; i++) {
        if (map->slots[i].used)
            *find_slot(slots, capacity, map->slots[i].key) = map->slots[i];
    }
    free(map->slots);
    map->slots = slots;
    map->capacity = capacity;
    return true;
}

bool sprof_map_put(struct sprof_map *map, uint64_t key, uint32_t value)
{
    if ((map->count + 1) * 4 > map->capacity * 3 && !grow(map))
        return false;
    struct sprof_map_slot *slot = find_slot(map->slots, map->capacity, key);
    if (!slot->used) {
        slot->used = 1;
        slot->key = key;
        map->count++;
    }
    slot->value = value;
    return true;
}
