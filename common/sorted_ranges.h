/* Arrays of address ranges sorted by start, whose first member is that
 * start (a uint64_t): a unit's ranges and functions in the symbolizer, a
 * perf map's entries. Static inline: usable from any of the libraries. */
#ifndef SPROF_SORTED_RANGES_H
#define SPROF_SORTED_RANGES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The index of the first of count elements (each size bytes, sorted by
 * their leading start) that starts after at: the ranges that may hold at
 * are those before it. */
static inline size_t sprof_first_starting_after(const void *elements, size_t count, size_t size,
                                                uint64_t at)
{
    const unsigned char *base = elements;
    size_t low = 0, high = count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        uint64_t start;
        memcpy(&start, base + middle * size, sizeof start);
        if (start <= at)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

#endif
