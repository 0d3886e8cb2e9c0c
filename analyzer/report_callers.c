/* --callers and --callees: pstats' print_callers and print_callees, from
 * the sampled stacks (time) and the call counts (exact calls) where the
 * trace has them. */
#include <inttypes.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* What one neighbour (a caller or a callee) contributes. */
struct neighbour {
    uint32_t function; /* UINT32_MAX: the stack's root (no caller) or self time */
    uint64_t samples, weight_ns, calls;
    size_t last_stack; /* counted once per stack */
};

struct neighbours {
    struct neighbour *items;
    size_t count, capacity;
};

static struct neighbour *neighbour(struct neighbours *list, uint32_t function)
{
    for (size_t i = 0; i < list->count; i++) {
        if (list->items[i].function == function)
            return &list->items[i];
    }
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        struct neighbour *items = realloc(list->items, capacity * sizeof *items);
        if (!items)
            return NULL;
        list->items = items;
        list->capacity = capacity;
    }
    struct neighbour *n = &list->items[list->count++];
    memset(n, 0, sizeof *n);
    n->function = function;
    n->last_stack = SIZE_MAX;
    return n;
}

static int compare_neighbours(const void *left, const void *right)
{
    const struct neighbour *a = left, *b = right;
    if (a->weight_ns != b->weight_ns)
        return a->weight_ns > b->weight_ns ? -1 : 1;
    if (a->calls != b->calls)
        return a->calls > b->calls ? -1 : 1;
    return a->function < b->function ? -1 : a->function > b->function;
}

/* Gathers the callers (or callees) of target over all stacks and edges. */
static void gather(const struct profile *p, uint32_t target, bool callees,
                   struct neighbours *list)
{
    for (size_t s = 0; s < p->stack_count; s++) {
        const struct logical_stack *stack = &p->stacks[s];
        if (!stack->samples)
            continue;
        const uint32_t *frames = p->frames + stack->first_frame;
        for (uint32_t d = 0; d < stack->depth; d++) {
            if (frames[d] != target)
                continue;
            uint32_t other;
            if (callees)
                other = d > 0 ? frames[d - 1] : UINT32_MAX; /* UINT32_MAX: self */
            else
                other = d + 1 < stack->depth ? frames[d + 1] : UINT32_MAX; /* root */
            struct neighbour *n = neighbour(list, other);
            if (!n || n->last_stack == s)
                continue;
            n->last_stack = s;
            n->samples += stack->samples;
            n->weight_ns += stack->weight_ns;
        }
    }
    for (size_t e = 0; e < p->edge_count; e++) {
        const struct call_edge *edge = &p->edges[e];
        if ((callees ? edge->caller : edge->callee) != target)
            continue;
        struct neighbour *n = neighbour(list, callees ? edge->callee : edge->caller);
        if (n)
            n->calls += edge->calls;
    }
    if (list->count > 1)
        qsort(list->items, list->count, sizeof *list->items, compare_neighbours);
}

bool print_callers(FILE *out, const struct profile *p, const char *pattern, bool callees,
                   bool csv, char *error, size_t error_size)
{
    regex_t regex;
    int status = regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB);
    if (status != 0) {
        char why[128];
        regerror(status, &regex, why, sizeof why);
        snprintf(error, error_size, "bad pattern '%s' (%s)", pattern, why);
        return false;
    }
    size_t count;
    struct function_stats *stats = compute_function_stats(p, SORT_CUMULATIVE, &count);
    const struct sprof_string_table *strings = &p->strings;
    const char *relation = callees ? "callee" : "caller";
    if (csv)
        fprintf(out, "function,%s,seconds,share_percent,samples,calls\n", relation);
    size_t matched = 0;
    for (size_t i = 0; i < count; i++) {
        const struct function_stats *st = &stats[i];
        const char *name = sprof_string_table_get(strings, p->functions[st->function].name);
        if (regexec(&regex, name, 0, NULL, 0) != 0)
            continue;
        matched++;
        struct neighbours list = {0};
        gather(p, st->function, callees, &list);
        if (!csv) {
            char calls[48];
            format_calls(calls, sizeof calls, st->calls, st->primitive_calls);
            fprintf(out, "%s%s of ", matched > 1 ? "\n" : "", callees ? "Callees" : "Callers");
            put_sanitized(out, name, 0, 200);
            fprintf(out, "  (cumulative %.3f s, %" PRIu64 " samples", (double)st->cumulative_weight_ns / 1e9,
                    st->cumulative_samples);
            if (p->has_call_counts)
                fprintf(out, ", %s calls", calls);
            fprintf(out, ")\n%9s %8s %9s %12s  %s\n", "time_s", "share%", "samples", "calls",
                    relation);
        }
        for (size_t k = 0; k < list.count; k++) {
            const struct neighbour *n = &list.items[k];
            const char *other = n->function == UINT32_MAX
                                    ? (callees ? "(self)" : "(root of the stack)")
                                    : sprof_string_table_get(strings, p->functions[n->function].name);
            double share = st->cumulative_weight_ns
                               ? 100.0 * (double)n->weight_ns / (double)st->cumulative_weight_ns
                               : 0.0;
            if (csv) {
                put_csv_field(out, name);
                fputc(',', out);
                put_csv_field(out, other);
                fprintf(out, ",%.6f,%.4f,%" PRIu64 ",", (double)n->weight_ns / 1e9, share,
                        n->samples);
                if (p->has_call_counts && n->function != UINT32_MAX)
                    fprintf(out, "%" PRIu64, n->calls);
                fputc('\n', out);
            } else {
                fprintf(out, "%9.3f %7.2f%% %9" PRIu64 " ", (double)n->weight_ns / 1e9, share,
                        n->samples);
                if (p->has_call_counts && n->function != UINT32_MAX)
                    fprintf(out, "%12" PRIu64 "  ", n->calls);
                else
                    fprintf(out, "%12s  ", "-");
                put_sanitized(out, other, 0, 200);
                fputc('\n', out);
            }
        }
        free(list.items);
    }
    if (!matched && !csv)
        fprintf(out, "No function matches '%s'.\n", pattern);
    free(stats);
    regfree(&regex);
    return true;
}
