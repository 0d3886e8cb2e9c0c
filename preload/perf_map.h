/* The names a JIT writes for its code in /tmp/perf-PID.map, perf's format
 * (one "START SIZE name" line per function, hexadecimal): node with
 * --perf-basic-prof, Python 3.12's -X perf, the JVM through an agent,
 * Erlang's +JPperf. Used at exit, for addresses in no module.
 * NOT async-signal-safe (stdio, malloc). */
#ifndef SPROF_PERF_MAP_H
#define SPROF_PERF_MAP_H

#include <stddef.h>
#include <stdint.h>

struct perf_map_entry {
    uint64_t start, end;
    uint32_t line; /* the later line wins where two overlap (code reused) */
    uint32_t name; /* offset into names */
};

struct perf_map {
    struct perf_map_entry *entries; /* sorted by start */
    size_t count;
    char *names;
};

/* Reads this process's map; an empty map when there is none, it cannot be
 * read, or it was last written before this process started (a map left by
 * an earlier process with the same pid). At most PERF_MAP_MAX_ENTRIES lines
 * and PERF_MAP_MAX_BYTES of names are kept. */
#define PERF_MAP_MAX_ENTRIES (1u << 20)
#define PERF_MAP_MAX_BYTES ((size_t)64 << 20)
void perf_map_read_own(struct perf_map *map);
/* The name of the function holding address, or NULL. */
const char *perf_map_find(const struct perf_map *map, uint64_t address);
void perf_map_free(struct perf_map *map);

#endif
