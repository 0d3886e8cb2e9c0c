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

/* Arrays that grow by doubling: ARRAY_MAKE_ROOM. */
#include "array_room.h"

#endif
