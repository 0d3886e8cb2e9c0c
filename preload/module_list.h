/* The ELF objects loaded in this process, as recorded in the trace.
 * NOT async-signal-safe (dl_iterate_phdr, malloc). Used by the writer
 * thread, and at exit. Not thread-safe: callers hold the writer lock. */
#ifndef SPROF_MODULE_LIST_H
#define SPROF_MODULE_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sprof/trace_format.h"

struct sprof_module {
    uint32_t id;
    uint64_t load_bias;
    uint64_t start, end; /* mapped address range */
    uint8_t build_id[SPROF_BUILD_ID_MAX];
    uint32_t build_id_size;
    char *path;          /* a file, or "[vdso]"-style for objects without one */
    bool has_file;
};

struct sprof_module_list {
    struct sprof_module *modules;
    size_t count, capacity;
    unsigned long long seen_adds, seen_subs; /* loader counters at last scan */
    bool scanned;
};

struct sprof_encoder;

/* Scans the loaded objects and appends a MODULE record to enc for each one
 * not yet recorded. Cheap when nothing was loaded or unloaded since. */
void sprof_module_list_update(struct sprof_module_list *list, struct sprof_encoder *enc);
/* The recorded module whose range holds address, or NULL. When ranges
 * overlap (an object unloaded and another loaded there), the latest wins.
 * Inline: libsprof-names.so uses it too. */
static inline const struct sprof_module *
sprof_module_list_find(const struct sprof_module_list *list, uint64_t address)
{
    for (size_t i = list->count; i-- > 0;) {
        const struct sprof_module *m = &list->modules[i];
        if (address >= m->start && address < m->end)
            return m;
    }
    return NULL;
}
void sprof_module_list_free(struct sprof_module_list *list);

/* The executable segment [range[0], range[1]) of a loaded object: the one
 * holding address, or, with a name, the first of the object whose file name
 * starts with it. False if none. */
bool sprof_code_segment(const char *name, uintptr_t address, uintptr_t range[2]);

/* The address spans of the loaded objects, taken before a dlclose. After
 * it, the spans of the objects it unmapped are reserved (PROT_NONE, no
 * memory), so that a library loaded later lands elsewhere: at the same
 * addresses its functions would take the names of the unloaded one's
 * samples. At most 64 spans and 1 GiB in all, and none under an
 * address-space limit (ulimit -v), where the program needs the room. */
struct sprof_object_spans {
    size_t count;
    struct sprof_object_span {
        uintptr_t bias, start, end;
    } *spans;
};
void sprof_object_spans_take(struct sprof_object_spans *spans);
void sprof_object_spans_reserve_unmapped(struct sprof_object_spans *before);

#endif
