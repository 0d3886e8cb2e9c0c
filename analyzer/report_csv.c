/* CSV output (RFC 4180): a header row, then one row per function or
 * thread. Scripts rely on the column names. */
#include <inttypes.h>
#include <stdlib.h>

#include "report.h"

void put_csv_field(FILE *out, const char *text)
{
    /* Quote always: names may hold commas, quotes or newlines. */
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"')
            fputc('"', out);
        /* Control characters (escapes, newlines) as '?', as in the table. */
        fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, out);
    }
    fputc('"', out);
}

static double percent(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

void print_csv(FILE *out, const struct profile *p, const struct function_stats *stats,
               size_t count, const struct report_options *options)
{
    fputs("function,self_samples,self_percent,cumulative_samples,cumulative_percent,"
          "self_seconds,cumulative_seconds,location,module,calls,primitive_calls\n",
          out);
    size_t rows = options->limit && options->limit < count ? options->limit : count;
    for (size_t i = 0; i < rows; i++) {
        const struct function_stats *st = &stats[i];
        const struct function *fn = &p->functions[st->function];
        put_csv_field(out, sprof_string_table_get(&p->strings, fn->name));
        fprintf(out, ",%" PRIu64 ",%.4f,%" PRIu64 ",%.4f,%.6f,%.6f,", st->self_samples,
                percent(st->self_weight_ns, p->total_weight_ns), st->cumulative_samples,
                percent(st->cumulative_weight_ns, p->total_weight_ns),
                (double)st->self_weight_ns / 1e9, (double)st->cumulative_weight_ns / 1e9);
        put_csv_field(out, sprof_string_table_get(&p->strings, fn->location));
        fputc(',', out);
        put_csv_field(out, sprof_string_table_get(&p->strings, fn->module));
        /* Empty, not 0, when the trace has no counts: unknown is not zero. */
        if (p->has_call_counts)
            fprintf(out, ",%" PRIu64 ",%" PRIu64 "\n", st->calls, st->primitive_calls);
        else
            fputs(",,\n", out);
    }
}

void print_threads_csv(FILE *out, const struct profile *p)
{
    size_t *order = threads_in_order(p);
    if (!order)
        return;
    fputs("pid,tid,name,samples,sampled_seconds,share_percent,cpu_seconds\n", out);
    for (size_t i = 0; i < p->thread_count; i++) {
        const struct thread_info *t = &p->threads[order[i]];
        fprintf(out, "%u,%u,", p->processes[t->process].pid, t->tid);
        put_csv_field(out, sprof_string_table_get(&p->strings, t->name));
        fprintf(out, ",%" PRIu64 ",%.6f,%.4f,", t->samples, (double)t->weight_ns / 1e9,
                percent(t->weight_ns, p->total_weight_ns));
        if (t->cpu_ns)
            fprintf(out, "%.6f", (double)t->cpu_ns / 1e9);
        fputc('\n', out);
    }
    free(order);
}
