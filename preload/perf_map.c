#include "perf_map.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sorted_ranges.h"

_Static_assert(offsetof(struct perf_map_entry, start) == 0, "start first: sorted_ranges.h");

static int compare_entries(const void *left, const void *right)
{
    const struct perf_map_entry *a = left, *b = right;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* When this process started, in seconds of the real-time clock; 0 if
 * unknown. /proc/self/stat's starttime counts clock ticks since boot. */
static double process_start_realtime(void)
{
    FILE *stat_file = fopen("/proc/self/stat", "re");
    if (!stat_file)
        return 0;
    char text[1024];
    size_t length = fread(text, 1, sizeof text - 1, stat_file);
    fclose(stat_file);
    text[length] = '\0';
    char *at = strrchr(text, ')'); /* the command name may hold spaces */
    unsigned long long ticks = 0;
    /* Field 22, starttime; the text after ')' starts at field 3. */
    for (int field = 3; at && field <= 22; field++) {
        at = strchr(at + 1, ' ');
        if (at && field == 22)
            ticks = strtoull(at + 1, NULL, 10);
    }
    long per_second = sysconf(_SC_CLK_TCK);
    struct timespec boot, real;
    if (!ticks || per_second <= 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0 ||
        clock_gettime(CLOCK_REALTIME, &real) != 0)
        return 0;
    double age = (double)boot.tv_sec + boot.tv_nsec / 1e9 - (double)ticks / (double)per_second;
    return (double)real.tv_sec + real.tv_nsec / 1e9 - age;
}

void perf_map_read_own(struct perf_map *map)
{
    memset(map, 0, sizeof *map);
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    FILE *file = fopen(path, "re");
    if (!file)
        return;
    struct stat st;
    double started = process_start_realtime();
    /* A second of slack: the tick rounds the start down. */
    if (fstat(fileno(file), &st) != 0 || !S_ISREG(st.st_mode) ||
        (started > 0 && (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9 < started - 1)) {
        fclose(file);
        return;
    }
    size_t capacity = 0, names_size = 0, names_capacity = 0;
    char line[4096];
    uint32_t number = 0;
    while (fgets(line, sizeof line, file) && map->count < PERF_MAP_MAX_ENTRIES) {
        number++;
        char *end;
        unsigned long long start = strtoull(line, &end, 16);
        if (end == line || *end != ' ')
            continue;
        char *size_text = end + 1;
        unsigned long long size = strtoull(size_text, &end, 16);
        if (end == size_text || *end != ' ' || size == 0 || start + size < start)
            continue;
        char *name = end + 1;
        size_t length = strcspn(name, "\r\n");
        if (length == 0 || names_size + length + 1 > PERF_MAP_MAX_BYTES)
            continue;
        if (map->count == capacity) {
            size_t grown = capacity ? capacity * 2 : 256;
            struct perf_map_entry *entries = realloc(map->entries, grown * sizeof *entries);
            if (!entries)
                break;
            map->entries = entries;
            capacity = grown;
        }
        if (names_size + length + 1 > names_capacity) {
            size_t grown = names_capacity ? names_capacity * 2 : 4096;
            while (grown < names_size + length + 1)
                grown *= 2;
            char *names = realloc(map->names, grown);
            if (!names)
                break;
            map->names = names;
            names_capacity = grown;
        }
        memcpy(map->names + names_size, name, length);
        map->names[names_size + length] = '\0';
        map->entries[map->count++] =
            (struct perf_map_entry){start, start + size, number, (uint32_t)names_size};
        names_size += length + 1;
    }
    fclose(file);
    qsort(map->entries, map->count, sizeof *map->entries, compare_entries);
}

const char *perf_map_find(const struct perf_map *map, uint64_t address)
{
    size_t low = sprof_first_starting_after(map->entries, map->count, sizeof *map->entries, address);
    /* Of the entries holding it among the nearest before, the latest. */
    const struct perf_map_entry *best = NULL;
    for (size_t i = low, seen = 0; i-- > 0 && seen < 64; seen++) {
        const struct perf_map_entry *e = &map->entries[i];
        if (address < e->end && (!best || e->line > best->line))
            best = e;
    }
    return best ? map->names + best->name : NULL;
}

void perf_map_free(struct perf_map *map)
{
    free(map->entries);
    free(map->names);
    memset(map, 0, sizeof *map);
}
