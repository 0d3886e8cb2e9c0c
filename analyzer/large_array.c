#include "large_array.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)

bool large_array_grow(void **array, size_t old_count, size_t new_count, size_t size)
{
    size_t bytes = new_count * size;
    if (bytes < 2 * HUGE_PAGE) {
        void *grown = realloc(*array, bytes);
        if (!grown)
            return false;
        *array = grown;
        return true;
    }
    void *grown;
    if (posix_memalign(&grown, HUGE_PAGE, bytes) != 0)
        return false;
    /* Advice only: without huge pages the array works the same. Not for
     * a last part smaller than a huge page: a table of 2^20 ids and one
     * more would fill a whole huge page for its last 4 bytes. */
    madvise(grown, bytes & ~(size_t)(HUGE_PAGE - 1), MADV_HUGEPAGE);
    if (*array)
        memcpy(grown, *array, old_count * size);
    free(*array);
    *array = grown;
    return true;
}
