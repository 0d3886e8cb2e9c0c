/* Folded stacks, the input of FlameGraph's flamegraph.pl, speedscope and
 * inferno: one line per distinct stack, its functions from the root to the
 * leaf joined by ';', a space, and its sample count. Stacks that differ only
 * in addresses within the same functions, or in their process, are one line. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "string_table.h"

/* A name as one folded frame: ';' separates frames and the line ends the
 * stack, so those and other control characters become look-alikes. */
static void put_frame(FILE *out, const char *name)
{
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        if (*c == ';')
            fputc(':', out);
        else
            fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, out);
    }
}

/* A stack of no frames (a hostile trace's) may have no frame array at all:
 * it is not indexed. */
static uint64_t stack_hash(const struct profile *p, const struct logical_stack *stack)
{
    if (stack->depth == 0)
        return 0;
    return sprof_hash_bytes(&p->frames[stack->first_frame],
                            stack->depth * sizeof p->frames[0]);
}

static bool same_functions(const struct profile *p, const struct logical_stack *a,
                           const struct logical_stack *b)
{
    if (a->depth != b->depth)
        return false;
    return a->depth == 0 || memcmp(&p->frames[a->first_frame], &p->frames[b->first_frame],
                                   a->depth * sizeof p->frames[0]) == 0;
}

/* For each sampled stack, the first stack with the same functions (stacks
 * differ by address, within functions, and by process); NULL when out of
 * memory, and each stack is then its own line. */
static size_t *first_alike(const struct profile *p)
{
    size_t slots = 16;
    while (slots < 2 * p->stack_count)
        slots *= 2;
    size_t *table = malloc(slots * sizeof *table); /* stack + 1; 0: empty */
    size_t *first = malloc((p->stack_count + 1) * sizeof *first);
    if (!table || !first) {
        free(table);
        free(first);
        return NULL;
    }
    memset(table, 0, slots * sizeof *table);
    for (size_t s = 0; s < p->stack_count; s++) {
        first[s] = s;
        if (!p->stacks[s].samples)
            continue;
        size_t at = stack_hash(p, &p->stacks[s]) & (slots - 1);
        for (; table[at]; at = (at + 1) & (slots - 1)) {
            if (same_functions(p, &p->stacks[table[at] - 1], &p->stacks[s]))
                break;
        }
        if (table[at])
            first[s] = table[at] - 1;
        else
            table[at] = s + 1;
    }
    free(table);
    return first;
}

void print_folded(FILE *out, const struct profile *p)
{
    size_t *first = first_alike(p);
    uint64_t *samples = first ? calloc(p->stack_count + 1, sizeof *samples) : NULL;
    for (size_t s = 0; samples && s < p->stack_count; s++)
        samples[first[s]] += p->stacks[s].samples;
    for (size_t s = 0; s < p->stack_count; s++) {
        const struct logical_stack *stack = &p->stacks[s];
        uint64_t count = samples ? samples[s] : stack->samples;
        if (!stack->samples || (samples && first[s] != s))
            continue;
        for (uint32_t k = stack->depth; k-- > 0;) {
            const struct function *fn = &p->functions[p->frames[stack->first_frame + k]];
            put_frame(out, sprof_string_table_get(&p->strings, fn->name));
            if (k > 0)
                fputc(';', out);
        }
        fprintf(out, " %" PRIu64 "\n", count);
    }
    free(samples);
    free(first);
}
