/* The text report: a header that says how much of the run the samples
 * account for, then a pstats-like table. */
#include <inttypes.h>
#include <string.h>

#include "report.h"
#include "sprof/trace_format.h"

#define NAME_WIDTH_MAX 60

static double seconds(uint64_t ns)
{
    return (double)ns / 1e9;
}

static double percent(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

void put_sanitized(FILE *out, const char *text, int width, int precision)
{
    int written = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (precision >= 0 && written >= precision)
            break;
        fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, out);
        /* Count UTF-8 lead bytes only, so columns line up for names in it. */
        if ((*c & 0xc0) != 0x80)
            written++;
    }
    for (; written < width; written++)
        fputc(' ', out);
}

static const char *timer_description(const struct process_info *pr)
{
    if (pr->timer_kind == SPROF_TIMER_PERF_TASK_CLOCK)
        return pr->flags & SPROF_PROCESS_KERNEL_SAMPLED ? "perf task-clock, user and system time"
                                                        : "perf task-clock, user time only";
    if (pr->timer_kind == SPROF_TIMER_THREAD_CPUTIME)
        return "CPU-time timers, at the kernel tick's rate";
    return "unknown timer";
}

static void print_header(FILE *out, const struct profile *p)
{
    const struct sprof_string_table *s = &p->strings;
    uint64_t user = 0, system = 0, wall = 0, rss = 0, lost = 0, truncated = 0;
    uint64_t unsampled_system = 0;
    size_t summarized = 0, killed = 0;
    for (size_t i = 0; i < p->process_count; i++) {
        const struct process_info *pr = &p->processes[i];
        if (!pr->has_summary) {
            killed++;
            continue;
        }
        summarized++;
        user += pr->user_ns;
        system += pr->system_ns;
        if (!(pr->flags & SPROF_PROCESS_KERNEL_SAMPLED))
            unsampled_system += pr->system_ns;
        if (pr->wall_ns > wall)
            wall = pr->wall_ns;
        if (pr->max_rss_kb > rss)
            rss = pr->max_rss_kb;
        lost += pr->lost;
        truncated += pr->truncated;
    }
    if (p->process_count == 1) {
        const struct process_info *pr = &p->processes[0];
        fprintf(out, "Program:   ");
        put_sanitized(out, sprof_string_table_get(s, pr->command), 0, 200);
        fprintf(out, "  (pid %u)\n", pr->pid);
    } else {
        fprintf(out, "Programs:  %zu processes, first ", p->process_count);
        put_sanitized(out, sprof_string_table_get(s, p->processes[0].command), 0, 160);
        fprintf(out, "  (pid %u)\n", p->processes[0].pid);
    }
    const struct process_info *first = p->process_count ? &p->processes[0] : NULL;
    size_t threads = 0;
    for (size_t i = 0; i < p->thread_count; i++)
        threads += p->threads[i].samples > 0;
    fprintf(out, "Samples:   %" PRIu64 " standing for %.3f s of CPU, in %zu thread%s",
            p->total_samples, seconds(p->total_weight_ns), threads, threads == 1 ? "" : "s");
    if (first)
        fprintf(out, "; %u Hz, %s", first->frequency_hz, timer_description(first));
    fputc('\n', out);
    if (summarized) {
        fprintf(out, "Measured:  CPU %.3f s (user %.3f s, system %.3f s), wall %.3f s, "
                     "peak RSS %.1f MB\n",
                seconds(user + system), seconds(user), seconds(system), seconds(wall),
                (double)rss / 1024.0);
        uint64_t sampled = 0;
        for (size_t i = 0; i < p->thread_count; i++) {
            if (p->processes[p->threads[i].process].has_summary)
                sampled += p->threads[i].weight_ns;
        }
        fprintf(out, "Accounted: %.1f%% of the measured CPU time; %" PRIu64
                     " samples lost, %" PRIu64 " stacks truncated\n",
                percent(sampled, user + system), lost, truncated);
        if (unsampled_system)
            fprintf(out, "Unsampled: %.3f s of system time (time in system calls is not "
                         "sampled here; see the note below)\n",
                    seconds(unsampled_system));
    }
    if (killed)
        fprintf(out, "Warning:   %zu process%s ended without a summary (killed, or _exit): "
                     "measured CPU and memory unknown there\n",
                killed, killed == 1 ? "" : "es");
    for (size_t i = 0; i < p->notice_count; i++) {
        fprintf(out, "Note:      ");
        put_sanitized(out, p->notices[i], 0, 400);
        fputc('\n', out);
    }
    for (size_t i = 0; i < p->process_count; i++) {
        const char *warnings = sprof_string_table_get(s, p->processes[i].warnings);
        if (*warnings) {
            fprintf(out, "Settings:  ");
            put_sanitized(out, warnings, 0, 400);
            fputc('\n', out);
            break;
        }
    }
}

static const char *sort_description(enum sort_key key)
{
    switch (key) {
    case SORT_CUMULATIVE: return "cumulative time";
    case SORT_SELF: return "self time";
    case SORT_SAMPLES: return "self samples";
    case SORT_NAME: return "function name";
    }
    return "";
}

void print_table(FILE *out, const struct profile *p, const struct function_stats *stats,
                 size_t count, const struct report_options *options)
{
    const struct sprof_string_table *s = &p->strings;
    print_header(out, p);
    size_t rows = options->limit && options->limit < count ? options->limit : count;
    fprintf(out, "\nOrdered by: %s", sort_description(options->sort));
    if (rows < count)
        fprintf(out, " (first %zu of %zu functions)", rows, count);
    fprintf(out, "\n\n");
    int name_width = 8;
    for (size_t i = 0; i < rows; i++) {
        int length = (int)strlen(sprof_string_table_get(s, p->functions[stats[i].function].name));
        if (length > name_width)
            name_width = length > NAME_WIDTH_MAX ? NAME_WIDTH_MAX : length;
    }
    fprintf(out, "%9s %9s %7s %9s %9s %7s  %-*s  %s\n", "self_n", "self_s", "self%", "cum_n",
            "cum_s", "cum%", name_width, "function", "location");
    for (size_t i = 0; i < rows; i++) {
        const struct function_stats *st = &stats[i];
        const struct function *fn = &p->functions[st->function];
        fprintf(out, "%9" PRIu64 " %9.3f %6.2f%% %9" PRIu64 " %9.3f %6.2f%%  ", st->self_samples,
                seconds(st->self_weight_ns), percent(st->self_weight_ns, p->total_weight_ns),
                st->cumulative_samples, seconds(st->cumulative_weight_ns),
                percent(st->cumulative_weight_ns, p->total_weight_ns));
        put_sanitized(out, sprof_string_table_get(s, fn->name), name_width, NAME_WIDTH_MAX);
        fputs("  ", out);
        put_sanitized(out, sprof_string_table_get(s, fn->location), 0, 200);
        fputc('\n', out);
    }
    if (count == 0)
        fprintf(out, "(no samples)\n");
}

void print_threads_table(FILE *out, const struct profile *p)
{
    print_header(out, p);
    fprintf(out, "\n%8s %8s %9s %9s %7s %9s  %s\n", "pid", "tid", "samples", "sampled_s",
            "share%", "cpu_s", "name");
    for (size_t i = 0; i < p->thread_count; i++) {
        const struct thread_info *t = &p->threads[i];
        fprintf(out, "%8u %8u %9" PRIu64 " %9.3f %6.2f%% ", p->processes[t->process].pid, t->tid,
                t->samples, seconds(t->weight_ns), percent(t->weight_ns, p->total_weight_ns));
        if (t->cpu_ns)
            fprintf(out, "%9.3f  ", seconds(t->cpu_ns));
        else
            fprintf(out, "%9s  ", "-");
        put_sanitized(out, sprof_string_table_get(&p->strings, t->name), 0, 64);
        fputc('\n', out);
    }
}
