#include <stdlib.h>
#include <string.h>

#include "report.h"

static const struct profile *sort_profile;
static enum sort_key sort_by;

static int compare_u64_desc(uint64_t a, uint64_t b)
{
    return a < b ? 1 : a > b ? -1 : 0;
}

static int compare_stats(const void *left, const void *right)
{
    const struct function_stats *a = left, *b = right;
    int order = 0;
    switch (sort_by) {
    case SORT_CUMULATIVE:
        /* Equal cumulative time: callers before their callees, as a call
         * tree reads. */
        order = compare_u64_desc(a->cumulative_weight_ns, b->cumulative_weight_ns);
        if (!order && a->root_distance != b->root_distance)
            order = a->root_distance < b->root_distance ? -1 : 1;
        if (!order)
            order = compare_u64_desc(a->self_weight_ns, b->self_weight_ns);
        break;
    case SORT_SELF:
        order = compare_u64_desc(a->self_weight_ns, b->self_weight_ns);
        if (!order)
            order = compare_u64_desc(a->cumulative_weight_ns, b->cumulative_weight_ns);
        break;
    case SORT_SAMPLES:
        order = compare_u64_desc(a->self_samples, b->self_samples);
        if (!order)
            order = compare_u64_desc(a->cumulative_samples, b->cumulative_samples);
        break;
    case SORT_NAME:
        break;
    }
    if (!order && sort_by != SORT_NAME && a->root_distance != b->root_distance)
        order = a->root_distance < b->root_distance ? -1 : 1;
    if (!order) {
        const struct sprof_string_table *s = &sort_profile->strings;
        order = strcmp(sprof_string_table_get(s, sort_profile->functions[a->function].name),
                       sprof_string_table_get(s, sort_profile->functions[b->function].name));
    }
    if (!order)
        order = a->function < b->function ? -1 : a->function > b->function;
    return order;
}

struct function_stats *compute_function_stats(const struct profile *p, enum sort_key key,
                                              size_t *count)
{
    *count = 0;
    if (p->function_count == 0)
        return NULL;
    struct function_stats *all = calloc(p->function_count, sizeof *all);
    /* The last stack each function was counted in: counts it once per stack. */
    size_t *seen_in = malloc(p->function_count * sizeof *seen_in);
    if (!all || !seen_in) {
        free(all), free(seen_in);
        return NULL;
    }
    for (size_t f = 0; f < p->function_count; f++) {
        const struct function *fn = &p->functions[f];
        all[f] = (struct function_stats){(uint32_t)f,
                                         fn->self_samples,
                                         fn->self_weight_ns,
                                         fn->cumulative_samples,
                                         fn->cumulative_weight_ns,
                                         fn->root_distance,
                                         fn->calls,
                                         fn->primitive_calls};
        seen_in[f] = SIZE_MAX;
    }
    for (size_t s = 0; s < p->stack_count; s++) {
        const struct logical_stack *stack = &p->stacks[s];
        if (!stack->samples || stack->depth == 0)
            continue;
        const uint32_t *frames = p->frames + stack->first_frame;
        all[frames[0]].self_samples += stack->samples;
        all[frames[0]].self_weight_ns += stack->weight_ns;
        for (uint32_t d = 0; d < stack->depth; d++) {
            uint32_t f = frames[d];
            uint32_t distance = stack->depth - 1 - d;
            if (distance < all[f].root_distance)
                all[f].root_distance = distance;
            if (seen_in[f] == s)
                continue;
            seen_in[f] = s;
            all[f].cumulative_samples += stack->samples;
            all[f].cumulative_weight_ns += stack->weight_ns;
        }
    }
    free(seen_in);
    size_t used = 0;
    for (size_t f = 0; f < p->function_count; f++) {
        /* Functions that were called but never sampled are listed too. */
        if (all[f].cumulative_samples || all[f].calls)
            all[used++] = all[f];
    }
    sort_profile = p;
    sort_by = key;
    qsort(all, used, sizeof *all, compare_stats);
    *count = used;
    return all;
}
