/* Helpers for the analyzer tests: load a built trace, find functions and
 * their stats by display name. */
#ifndef SPROF_UNIT_PROFILE_H
#define SPROF_UNIT_PROFILE_H

#include "profile.h"
#include "report.h"
#include "unit.h"

/* Writes tb to a file and loads it, checking it loads whole and clean. */
/* A warning load_built must see (a substring), or NULL for none. */
extern const char *expected_load_warning;
void load_built(struct profile *profile, struct trace_builder *tb);
/* The index of the one function with that display name; fails the test
 * if there is none or more than one. */
uint32_t function_named(const struct profile *profile, const char *name);
/* How many functions have that display name. */
size_t functions_named(const struct profile *profile, const char *name);
const char *function_name(const struct profile *profile, uint32_t function);
/* The stats row of the function with that name; fails if it has none. */
const struct function_stats *stats_named(const struct profile *profile,
                                         const struct function_stats *stats, size_t count,
                                         const char *name);
/* Checks the rows' names, in order, against "a,b,c". */
void check_order(const struct profile *profile, const struct function_stats *stats, size_t count,
                 const char *names);
/* Checks what must hold for any profile: self figures add up to the
 * total, and no function's cumulative figures exceed it. */
void check_invariants(const struct profile *profile, const struct function_stats *stats,
                      size_t count);

#endif
