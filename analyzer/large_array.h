/* Growing arrays, and those that may grow large (a frame table's paths,
 * the path tree's nodes). Not thread-safe; uses malloc. */
#ifndef SPROF_LARGE_ARRAY_H
#define SPROF_LARGE_ARRAY_H

#include <stdbool.h>
#include <stddef.h>

/* Grows *array from old_count to new_count elements of size bytes,
 * keeping its contents. Large ones are 2 MB-aligned and ask for
 * transparent huge pages: filling them then takes a page fault per 2 MB
 * rather than per 4 KB, and fewer TLB misses. False (the array unchanged)
 * when out of memory. Free with free(). */
bool large_array_grow(void **array, size_t old_count, size_t new_count, size_t size);

/* Makes room in *array (elements of size bytes) for one more than count,
 * doubling its *capacity as needed. False (the array unchanged) when out
 * of memory. */
bool array_make_room(void **array, size_t *capacity, size_t count, size_t size);
#define ARRAY_MAKE_ROOM(array, capacity, count) \
    array_make_room((void **)&(array), &(capacity), (count), sizeof *(array))

#endif
