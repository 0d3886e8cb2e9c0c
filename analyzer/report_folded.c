/* Folded stacks, the input of FlameGraph's flamegraph.pl, speedscope and
 * inferno: one line per distinct stack, its functions from the root to the
 * leaf joined by ';', a space, and its sample count. */
#include <inttypes.h>

#include "report.h"

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

void print_folded(FILE *out, const struct profile *p)
{
    for (size_t s = 0; s < p->stack_count; s++) {
        const struct logical_stack *stack = &p->stacks[s];
        if (!stack->samples)
            continue;
        for (uint32_t k = stack->depth; k-- > 0;) {
            const struct function *fn = &p->functions[p->frames[stack->first_frame + k]];
            put_frame(out, sprof_string_table_get(&p->strings, fn->name));
            if (k > 0)
                fputc(';', out);
        }
        fprintf(out, " %" PRIu64 "\n", stack->samples);
    }
}
