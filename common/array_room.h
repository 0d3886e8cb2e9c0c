/* Arrays that grow by doubling, for the analyzer and the symbolizer.
 * Uses realloc: NOT async-signal-safe. */
#ifndef SPROF_ARRAY_ROOM_H
#define SPROF_ARRAY_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Makes room in *array (elements of size bytes) for one more than count,
 * doubling its *capacity as needed. False (the array unchanged) when out
 * of memory. */
static inline bool array_make_room(void **array, size_t *capacity, size_t count, size_t size)
{
    if (count < *capacity)
        return true;
    size_t next = *capacity ? *capacity * 2 : 64;
    void *bigger = realloc(*array, next * size);
    if (!bigger)
        return false;
    *array = bigger;
    *capacity = next;
    return true;
}

#define ARRAY_MAKE_ROOM(array, capacity, count) \
    array_make_room((void **)&(array), &(capacity), (count), sizeof *(array))

#endif
