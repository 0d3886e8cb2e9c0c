/* The text report: a header that says how much of the run the samples
 * account for, then a pstats-like table. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hash_map.h"
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
        /* C1 controls (U+0080..U+009F, e.g. CSI) act like escapes too. */
        if (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) {
            fputc('?', out);
            c++;
            written++;
            continue;
        }
        fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, out);
        /* Count UTF-8 lead bytes only, so columns line up for names in it. */
        if ((*c & 0xc0) != 0x80)
            written++;
    }
    for (; written < width; written++)
        fputc(' ', out);
}

uint64_t location_line(const char *location, size_t *file_length)
{
    const char *colon = strrchr(location, ':');
    *file_length = strlen(location);
    if (!colon || !colon[1] || colon == location)
        return 0;
    uint64_t line = 0;
    for (const char *c = colon + 1; *c; c++) {
        if (*c < '0' || *c > '9' || line > UINT32_MAX)
            return 0;
        line = line * 10 + (uint64_t)(*c - '0');
    }
    *file_length = (size_t)(colon - location);
    return line;
}

void format_calls(char *text, size_t size, uint64_t calls, uint64_t primitive)
{
    if (calls == primitive)
        snprintf(text, size, "%" PRIu64, calls);
    else
        snprintf(text, size, "%" PRIu64 "/%" PRIu64, calls, primitive);
}

const char *timer_description(const struct process_info *pr)
{
    if (pr->timer_kind == SPROF_TIMER_PERF_TASK_CLOCK)
        return pr->flags & SPROF_PROCESS_KERNEL_SAMPLED ? "perf task-clock, user and system time"
                                                        : "perf task-clock, user time only";
    if (pr->timer_kind == SPROF_TIMER_THREAD_CPUTIME)
        return "CPU-time timers, at the kernel tick's rate";
    return "unknown timer";
}

void compute_run_totals(const struct profile *p, struct run_totals *t)
{
    memset(t, 0, sizeof *t);
    /* Images one process ran in turn by exec: one process, its wall time
     * their sum. pid -> index into walls. */
    struct sprof_map pids;
    sprof_map_init(&pids);
    uint64_t *walls = calloc(p->process_count ? p->process_count : 1, sizeof *walls);
    for (size_t i = 0; i < p->process_count; i++) {
        uint32_t at;
        if (!sprof_map_get(&pids, p->processes[i].pid, &at)) {
            at = (uint32_t)t->processes++;
            sprof_map_put(&pids, p->processes[i].pid, at);
        }
        if (walls && p->processes[i].has_summary) {
            walls[at] += p->processes[i].wall_ns;
            if (walls[at] > t->wall_ns)
                t->wall_ns = walls[at];
        }
    }
    free(walls);
    sprof_map_free(&pids);
    for (size_t i = 0; i < p->process_count; i++) {
        const struct process_info *pr = &p->processes[i];
        if (!pr->has_summary) {
            t->unsummarized++;
            continue;
        }
        t->summarized++;
        t->user_ns += pr->user_ns;
        t->system_ns += pr->system_ns;
        if (!(pr->flags & SPROF_PROCESS_KERNEL_SAMPLED))
            t->unsampled_system_ns += pr->system_ns;
        if (pr->max_rss_kb > t->max_rss_kb)
            t->max_rss_kb = pr->max_rss_kb;
        t->lost += pr->lost;
        t->truncated += pr->truncated;
    }
    /* A thread that lived through an exec is one thread. */
    struct sprof_map tids;
    sprof_map_init(&tids);
    for (size_t i = 0; i < p->thread_count; i++) {
        uint64_t key = (uint64_t)p->processes[p->threads[i].process].pid << 32 | p->threads[i].tid;
        uint32_t seen;
        if (p->threads[i].samples > 0 && !sprof_map_get(&tids, key, &seen)) {
            t->threads++;
            sprof_map_put(&tids, key, 1);
        }
        if (p->processes[p->threads[i].process].has_summary)
            t->summarized_weight_ns += p->threads[i].weight_ns;
    }
    sprof_map_free(&tids);
}

static void print_header(FILE *out, const struct profile *p)
{
    const struct sprof_string_table *s = &p->strings;
    struct run_totals totals;
    compute_run_totals(p, &totals);
    uint64_t user = totals.user_ns, system = totals.system_ns, wall = totals.wall_ns;
    uint64_t rss = totals.max_rss_kb, lost = totals.lost, truncated = totals.truncated;
    uint64_t unsampled_system = totals.unsampled_system_ns;
    size_t summarized = totals.summarized, killed = totals.unsummarized;
    if (totals.processes == 1) {
        const struct process_info *pr = &p->processes[0];
        fprintf(out, "Program:   ");
        put_sanitized(out, sprof_string_table_get(s, pr->command), 0, 200);
        fprintf(out, "  (pid %u", pr->pid);
        if (p->process_count > 1)
            fprintf(out, "; %zu programs run in turn by exec", p->process_count);
        fprintf(out, ")\n");
    } else {
        fprintf(out, "Programs:  %zu processes, first ", totals.processes);
        put_sanitized(out, sprof_string_table_get(s, p->processes[0].command), 0, 160);
        fprintf(out, "  (pid %u)\n", p->processes[0].pid);
    }
    const struct process_info *first = p->process_count ? &p->processes[0] : NULL;
    size_t threads = totals.threads;
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
        fprintf(out, "Accounted: %.1f%% of the measured CPU time; %" PRIu64
                     " samples lost, %" PRIu64 " stacks truncated\n",
                percent(totals.summarized_weight_ns, user + system), lost, truncated);
        if (unsampled_system)
            fprintf(out, "Unsampled: %.3f s of system time (time in system calls is not "
                         "sampled here; see the note below)\n",
                    seconds(unsampled_system));
    }
    if (killed)
        fprintf(out, "Warning:   %zu process%s ended without a summary (killed, or _exit): "
                     "measured CPU and memory unknown there\n",
                killed, killed == 1 ? "" : "es");
    if (p->has_call_counts) {
        fprintf(out, "Calls:     exact counts from -finstrument-functions hooks");
        if (p->dropped_calls)
            fprintf(out, "; %" PRIu64 " calls could not be counted (re-entered from a signal "
                         "handler)", p->dropped_calls);
        fputc('\n', out);
    }
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
    bool counts = p->has_call_counts;
    if (counts)
        fprintf(out, "%13s %10s %10s ", "ncalls", "percall_s", "percall_c");
    fprintf(out, "%9s %9s %7s %9s %9s %7s  %-*s  %s\n", "self_n", "self_s", "self%", "cum_n",
            "cum_s", "cum%", name_width, "function", "location");
    for (size_t i = 0; i < rows; i++) {
        const struct function_stats *st = &stats[i];
        const struct function *fn = &p->functions[st->function];
        if (counts) {
            /* pstats: self time per call, cumulative time per primitive call. */
            char calls[48];
            format_calls(calls, sizeof calls, st->calls, st->primitive_calls);
            fprintf(out, "%13s ", st->calls ? calls : "-");
            if (st->calls)
                fprintf(out, "%10.3g ", seconds(st->self_weight_ns) / (double)st->calls);
            else
                fprintf(out, "%10s ", "-");
            if (st->primitive_calls)
                fprintf(out, "%10.3g ", seconds(st->cumulative_weight_ns) / (double)st->primitive_calls);
            else
                fprintf(out, "%10s ", "-");
        }
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

static const struct profile *order_profile;

static int compare_threads(const void *left, const void *right)
{
    const struct thread_info *a = &order_profile->threads[*(const size_t *)left];
    const struct thread_info *b = &order_profile->threads[*(const size_t *)right];
    uint32_t pa = order_profile->processes[a->process].pid;
    uint32_t pb = order_profile->processes[b->process].pid;
    if (pa != pb)
        return pa < pb ? -1 : 1;
    return a->tid < b->tid ? -1 : a->tid > b->tid;
}

size_t *threads_in_order(const struct profile *p)
{
    size_t *order = malloc((p->thread_count ? p->thread_count : 1) * sizeof *order);
    if (!order)
        return NULL;
    for (size_t i = 0; i < p->thread_count; i++)
        order[i] = i;
    order_profile = p;
    qsort(order, p->thread_count, sizeof *order, compare_threads);
    return order;
}

void print_threads_table(FILE *out, const struct profile *p)
{
    size_t *order = threads_in_order(p);
    if (!order)
        return;
    print_header(out, p);
    fprintf(out, "\n%8s %8s %9s %9s %7s %9s  %s\n", "pid", "tid", "samples", "sampled_s",
            "share%", "cpu_s", "name");
    for (size_t i = 0; i < p->thread_count; i++) {
        const struct thread_info *t = &p->threads[order[i]];
        fprintf(out, "%8u %8u %9" PRIu64 " %9.3f %6.2f%% ", p->processes[t->process].pid, t->tid,
                t->samples, seconds(t->weight_ns), percent(t->weight_ns, p->total_weight_ns));
        if (t->cpu_ns)
            fprintf(out, "%9.3f  ", seconds(t->cpu_ns));
        else
            fprintf(out, "%9s  ", "-");
        put_sanitized(out, sprof_string_table_get(&p->strings, t->name), 0, 64);
        fputc('\n', out);
    }
    free(order);
}

void print_summary(FILE *out, const struct profile *p, bool csv)
{
    struct run_totals t;
    compute_run_totals(p, &t);
    const struct process_info *first = p->process_count ? &p->processes[0] : NULL;
    const char *format = csv ? "%s,%s\n" : "%-26s %s\n";
    char value[64];
    if (csv)
        fprintf(out, "key,value\n");
#define ROW(key, ...) (snprintf(value, sizeof value, __VA_ARGS__), fprintf(out, format, key, value))
    ROW("processes", "%zu", t.processes);
    ROW("processes_without_summary", "%zu", t.unsummarized);
    ROW("threads", "%zu", t.threads);
    ROW("samples", "%" PRIu64, p->total_samples);
    ROW("sampled_seconds", "%.6f", seconds(p->total_weight_ns));
    ROW("frequency_hz", "%u", first ? first->frequency_hz : 0);
    ROW("timer", "%s", !first ? "none"
                       : first->timer_kind == SPROF_TIMER_PERF_TASK_CLOCK ? "perf"
                       : first->timer_kind == SPROF_TIMER_THREAD_CPUTIME ? "cputime"
                                                                          : "unknown");
    ROW("kernel_sampled", "%d", first && (first->flags & SPROF_PROCESS_KERNEL_SAMPLED) ? 1 : 0);
    /* What only a summary measures is unknown, not 0, when no process has
     * one (a killed program): empty in CSV, "-" in text. */
    const char *unknown = csv ? "" : "-";
    if (t.processes > t.unsummarized) {
        ROW("user_seconds", "%.6f", seconds(t.user_ns));
        ROW("system_seconds", "%.6f", seconds(t.system_ns));
        ROW("cpu_seconds", "%.6f", seconds(t.user_ns + t.system_ns));
        ROW("wall_seconds", "%.6f", seconds(t.wall_ns));
        ROW("peak_rss_kb", "%" PRIu64, t.max_rss_kb);
        ROW("accounted_percent", "%.3f",
            percent(t.summarized_weight_ns, t.user_ns + t.system_ns));
        ROW("unsampled_system_seconds", "%.6f", seconds(t.unsampled_system_ns));
    } else {
        static const char *const measured[] = {"user_seconds", "system_seconds", "cpu_seconds",
                                               "wall_seconds", "peak_rss_kb", "accounted_percent",
                                               "unsampled_system_seconds"};
        for (size_t i = 0; i < sizeof measured / sizeof measured[0]; i++)
            ROW(measured[i], "%s", unknown);
    }
    ROW("lost_samples", "%" PRIu64, t.lost);
    ROW("truncated_stacks", "%" PRIu64, t.truncated);
    ROW("call_counts", "%d", p->has_call_counts ? 1 : 0);
    ROW("dropped_calls", "%" PRIu64, p->dropped_calls);
#undef ROW
}
