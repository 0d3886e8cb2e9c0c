#include "unit_profile.h"

const char *expected_load_warning = NULL;

void load_built(struct profile *profile, struct trace_builder *tb)
{
    char path[64], error[256], warning[256];
    tb_write(tb, path);
    error[0] = '\0';
    int records = profile_load_file(profile, path, error, sizeof error, warning, sizeof warning);
    if (records < 0)
        fprintf(stderr, "load error: %s\n", error);
    CHECK_EQ(records, tb->record_count);
    if (expected_load_warning)
        CHECK(strstr(warning, expected_load_warning) != NULL);
    else
        CHECK_STR(warning, "");
}

const char *function_name(const struct profile *profile, uint32_t function)
{
    CHECK(function < profile->function_count);
    return sprof_string_table_get(&profile->strings, profile->functions[function].name);
}

size_t functions_named(const struct profile *profile, const char *name)
{
    size_t found = 0;
    for (size_t i = 0; i < profile->function_count; i++) {
        if (!strcmp(function_name(profile, (uint32_t)i), name))
            found++;
    }
    return found;
}

uint32_t function_named(const struct profile *profile, const char *name)
{
    for (size_t i = 0; i < profile->function_count; i++) {
        if (!strcmp(function_name(profile, (uint32_t)i), name)) {
            CHECK_EQ(functions_named(profile, name), 1);
            return (uint32_t)i;
        }
    }
    unit_fail_str(__FILE__, __LINE__, "a function has the name", NULL, name);
    return 0;
}

const struct function_stats *stats_named(const struct profile *profile,
                                         const struct function_stats *stats, size_t count,
                                         const char *name)
{
    uint32_t function = function_named(profile, name);
    for (size_t i = 0; i < count; i++) {
        if (stats[i].function == function)
            return &stats[i];
    }
    unit_fail_str(__FILE__, __LINE__, "a stats row for", NULL, name);
    return NULL;
}

void check_order(const struct profile *profile, const struct function_stats *stats, size_t count,
                 const char *names)
{
    char got[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < count && used < sizeof got; i++) {
        int n = snprintf(got + used, sizeof got - used, "%s%s", i ? "," : "",
                         function_name(profile, stats[i].function));
        if (n < 0)
            break;
        used += (size_t)n;
    }
    CHECK_STR(got, names);
}

void check_invariants(const struct profile *profile, const struct function_stats *stats,
                      size_t count)
{
    uint64_t self_samples = 0, self_weight = 0;
    for (size_t i = 0; i < count; i++) {
        self_samples += stats[i].self_samples;
        self_weight += stats[i].self_weight_ns;
        CHECK(stats[i].self_samples <= stats[i].cumulative_samples);
        CHECK(stats[i].self_weight_ns <= stats[i].cumulative_weight_ns);
        CHECK(stats[i].cumulative_samples <= profile->total_samples);
        CHECK(stats[i].cumulative_weight_ns <= profile->total_weight_ns);
    }
    CHECK_EQ(self_samples, profile->total_samples);
    CHECK_EQ(self_weight, profile->total_weight_ns);
}
