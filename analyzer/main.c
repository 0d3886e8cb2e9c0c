/* sprof-analyze: reads sprof traces and prints where the CPU time went.
 *
 * Exit status: 0 success; 1 usage error; 2 a trace could not be read (missing
 * file, not a trace, unsupported version, nothing usable in it); 3 the
 * report could not be written. */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profile.h"
#include "report.h"
#include "sprof/trace_format.h"

#define EXIT_USAGE 1
#define EXIT_BAD_TRACE 2
#define EXIT_OUTPUT 3

static const char usage_text[] =
    "Usage: sprof-analyze [OPTION]... TRACE...\n"
    "Print where a profiled program spent its CPU time.\n"
    "\n"
    "  -s, --sort KEY      cumulative (default), self, samples or name\n"
    "  -n, --limit N       print at most N functions (default: all)\n"
    "  -f, --format FMT    table (default), csv, folded (stacks for FlameGraph,\n"
    "                      speedscope: 'root;...;leaf samples' per line), pprof\n"
    "                      (gzipped profile.proto for pprof: redirect it to a file)\n"
    "                      or callgrind (for KCachegrind, callgrind_annotate)\n"
    "  -t, --threads       per-thread view instead of per-function\n"
    "      --summary       the run's figures only (samples, CPU, wall, memory)\n"
    "      --callers REGEX for functions matching REGEX, who calls them: time, share\n"
    "                      and exact calls (with -finstrument-functions)\n"
    "      --callees REGEX for functions matching REGEX, what they call\n"
    "      --no-children   do not merge the traces of processes the run started\n"
    "      --per-process   one report per process instead of one merged report\n"
    "      --pid PID       only the process PID\n"
    "  -h, --help          show this help\n"
    "  -V, --version       show the version\n"
    "\n"
    "Traces of child processes (TRACE.<pid>) from the same run are read too,\n"
    "merged unless --per-process or --pid says otherwise.\n"
    "Exit status: 0 ok, 1 usage error, 2 unreadable trace, 3 output error.\n";

static void usage_error(const char *message, const char *argument)
{
    fprintf(stderr, "sprof-analyze: %s%s%s\n", message, argument ? ": " : "",
            argument ? argument : "");
    fprintf(stderr, "Try 'sprof-analyze --help' for more information.\n");
    exit(EXIT_USAGE);
}

static bool parse_sort(const char *text, enum sort_key *key)
{
    static const struct {
        const char *name;
        enum sort_key key;
    } keys[] = {{"cumulative", SORT_CUMULATIVE}, {"cum", SORT_CUMULATIVE}, {"self", SORT_SELF},
                {"tottime", SORT_SELF},          {"samples", SORT_SAMPLES}, {"name", SORT_NAME}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!strcmp(text, keys[i].name)) {
            *key = keys[i].key;
            return true;
        }
    }
    return false;
}

struct trace_list {
    char **paths;
    size_t count, capacity;
};

static void add_path(struct trace_list *list, const char *path)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        char **paths = realloc(list->paths, capacity * sizeof *paths);
        if (!paths)
            return;
        list->paths = paths;
        list->capacity = capacity;
    }
    char *copy = strdup(path);
    if (copy)
        list->paths[list->count++] = copy;
}

/* Adds path and, if it is a run's first trace, its children's traces
 * (PATH.<pid> with the same run id). */
static void add_with_children(struct trace_list *list, const char *path, bool children)
{
    add_path(list, path);
    uint64_t run_id;
    bool is_root;
    uint32_t pid;
    if (!children || !trace_run_identity(path, &run_id, &is_root, &pid) || !is_root)
        return;
    size_t length = strlen(path);
    char *pattern = malloc(length * 2 + 16);
    if (!pattern)
        return;
    /* Escape glob characters in the path itself. */
    size_t n = 0;
    for (const char *c = path; *c; c++) {
        if (strchr("*?[\\", *c))
            pattern[n++] = '\\';
        pattern[n++] = *c;
    }
    strcpy(pattern + n, ".[0-9]*");
    glob_t found;
    if (glob(pattern, 0, NULL, &found) == 0) {
        for (size_t i = 0; i < found.gl_pathc; i++) {
            uint64_t child_run;
            bool child_root;
            uint32_t child_pid;
            if (trace_run_identity(found.gl_pathv[i], &child_run, &child_root, &child_pid) &&
                child_run == run_id && !child_root)
                add_path(list, found.gl_pathv[i]);
        }
        globfree(&found);
    }
    free(pattern);
}

/* Loads one trace into profile; a bad one is reported. Returns false if it
 * could not be read at all. */
static bool load_trace(struct profile *profile, const char *path)
{
    char error[512], warning[512];
    if (profile_load_file(profile, path, error, sizeof error, warning, sizeof warning) < 0) {
        fprintf(stderr, "sprof-analyze: %s: %s\n", path, error);
        return false;
    }
    if (warning[0])
        fprintf(stderr, "sprof-analyze: warning: %s: %s\n", path, warning);
    return true;
}

struct view {
    struct report_options options;
    bool csv, threads, summary;
    const char *callers, *callees;
    bool folded, pprof, callgrind;
};

/* Prints the chosen view of profile; false if it could not be written. */
static bool print_view(struct profile *profile, const struct view *v)
{
    if (v->pprof || v->callgrind) {
        char error[256];
        if (!(v->pprof ? print_pprof : print_callgrind)(stdout, profile, error, sizeof error)) {
            fprintf(stderr, "sprof-analyze: %s\n", error);
            return false;
        }
    } else if (v->folded) {
        print_folded(stdout, profile);
    } else if (v->callers || v->callees) {
        char error[256];
        if ((v->callers &&
             !print_callers(stdout, profile, v->callers, false, v->csv, error, sizeof error)) ||
            (v->callees &&
             !print_callers(stdout, profile, v->callees, true, v->csv, error, sizeof error))) {
            profile_free(profile);
            usage_error(error, NULL);
        }
    } else if (v->summary) {
        print_summary(stdout, profile, v->csv);
    } else if (v->threads) {
        if (v->csv)
            print_threads_csv(stdout, profile);
        else
            print_threads_table(stdout, profile);
    } else {
        size_t count;
        struct function_stats *stats = compute_function_stats(profile, v->options.sort, &count);
        if (v->csv)
            print_csv(stdout, profile, stats, count, &v->options);
        else
            print_table(stdout, profile, stats, count, &v->options);
        free(stats);
    }
    return true;
}

int main(int argc, char **argv)
{
    struct report_options options = {.sort = SORT_CUMULATIVE};
    bool csv = false, folded = false, pprof = false, callgrind = false, threads = false,
         children = true, summary = false, per_process = false;
    const char *callers = NULL, *callees = NULL;
    uint32_t only_pid = 0;
    enum { OPT_NO_CHILDREN = 256, OPT_SUMMARY, OPT_CALLERS, OPT_CALLEES, OPT_PER_PROCESS, OPT_PID };
    static const struct option long_options[] = {
        {"sort", required_argument, NULL, 's'},   {"limit", required_argument, NULL, 'n'},
        {"format", required_argument, NULL, 'f'}, {"threads", no_argument, NULL, 't'},
        {"no-children", no_argument, NULL, OPT_NO_CHILDREN},
        {"summary", no_argument, NULL, OPT_SUMMARY},
        {"callers", required_argument, NULL, OPT_CALLERS},
        {"callees", required_argument, NULL, OPT_CALLEES},
        {"per-process", no_argument, NULL, OPT_PER_PROCESS},
        {"pid", required_argument, NULL, OPT_PID},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":s:n:f:thV", long_options, NULL)) != -1) {
        switch (option) {
        case 's':
            if (!parse_sort(optarg, &options.sort))
                usage_error("unknown sort key (use cumulative, self, samples or name)", optarg);
            break;
        case 'n': {
            char *end;
            errno = 0;
            long long limit = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || limit < 0)
                usage_error("--limit needs a whole number >= 0", optarg);
            options.limit = (size_t)limit;
            break;
        }
        case 'f':
            csv = folded = pprof = callgrind = false;
            if (!strcmp(optarg, "csv"))
                csv = true;
            else if (!strcmp(optarg, "folded"))
                folded = true;
            else if (!strcmp(optarg, "pprof"))
                pprof = true;
            else if (!strcmp(optarg, "callgrind"))
                callgrind = true;
            else if (strcmp(optarg, "table"))
                usage_error("unknown format (use table, csv, folded, pprof or callgrind)",
                            optarg);
            break;
        case 't':
            threads = true;
            break;
        case OPT_SUMMARY:
            summary = true;
            break;
        case OPT_CALLERS:
            callers = optarg;
            break;
        case OPT_CALLEES:
            callees = optarg;
            break;
        case OPT_PER_PROCESS:
            per_process = true;
            break;
        case OPT_PID: {
            char *end;
            errno = 0;
            long long pid = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || pid <= 0 || pid > UINT32_MAX)
                usage_error("--pid needs a process id", optarg);
            only_pid = (uint32_t)pid;
            break;
        }
        case OPT_NO_CHILDREN:
            children = false;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            printf("sprof-analyze %s (trace format version %u)\n", SPROF_VERSION,
                   SPROF_TRACE_VERSION);
            return 0;
        case ':':
            usage_error("option needs a value", argv[optind - 1]);
            break;
        default:
            usage_error("unknown option", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        usage_error("no trace file given", NULL);
    if ((pprof || callgrind) && per_process)
        usage_error("pprof and callgrind write one profile: choose a process with --pid "
                    "instead of", "--per-process");
    /* Compressed bytes would only garble the terminal (as gzip refuses too). */
    if (pprof && isatty(STDOUT_FILENO))
        usage_error("pprof output is binary: redirect it to a file, as in > profile.pb.gz",
                    NULL);

    struct trace_list list = {0};
    for (int i = optind; i < argc; i++) {
        /* Children are found only for a single trace; named files are taken as given. */
        add_with_children(&list, argv[i], children && argc - optind == 1);
    }
    struct view view = {options, csv,     threads, summary, callers,
                        callees, folded, pprof,   callgrind};
    /* Only folded stacks, pprof, callgrind and callers list stacks; the rest
     * needs the functions' figures, which come faster from the frame tables. */
    bool without_stacks = !folded && !pprof && !callgrind && !callers && !callees;
    int status = 0;
    size_t loaded = 0;
    struct profile profile;
    profile_init(&profile);
    profile.without_stacks = without_stacks;
    /* Each trace's pid (0: unreadable or not needed), for --pid, and for
     * --per-process: the images a process ran in turn by exec wrote a trace
     * each, reported together. */
    uint32_t *pids = calloc(list.count ? list.count : 1, sizeof *pids);
    bool *taken = calloc(list.count ? list.count : 1, sizeof *taken);
    if (!pids || !taken) {
        fprintf(stderr, "sprof-analyze: out of memory\n");
        return EXIT_BAD_TRACE;
    }
    for (size_t i = 0; (per_process || only_pid) && i < list.count; i++) {
        uint64_t run_id;
        bool is_root;
        if (!trace_run_identity(list.paths[i], &run_id, &is_root, &pids[i]))
            pids[i] = 0;
    }
    for (size_t i = 0; i < list.count; i++) {
        if (taken[i] || (only_pid && pids[i] != only_pid))
            continue;
        size_t before = loaded;
        for (size_t j = i; j < list.count; j++) {
            if (taken[j] || (j > i && (!per_process || !pids[i] || pids[j] != pids[i])))
                continue;
            taken[j] = true;
            if (!load_trace(&profile, list.paths[j])) {
                status = EXIT_BAD_TRACE;
                continue;
            }
            loaded++;
            if (per_process && !csv && loaded == before + 1)
                printf("%s==== process %u: %s", before ? "\n" : "", profile.processes[0].pid,
                       list.paths[j]);
            else if (per_process && !csv)
                printf(", %s", list.paths[j]);
        }
        if (per_process && loaded > before) {
            if (!csv)
                printf(" ====\n");
            if (!print_view(&profile, &view))
                status = EXIT_OUTPUT;
            profile_free(&profile);
            profile_init(&profile);
            profile.without_stacks = without_stacks;
        }
    }
    free(pids);
    free(taken);
    if (only_pid && loaded == 0 && status == 0) {
        fprintf(stderr, "sprof-analyze: no trace of process %u among the traces given\n",
                only_pid);
        status = EXIT_BAD_TRACE;
    }
    if (!per_process && loaded > 0 && !print_view(&profile, &view))
        status = EXIT_OUTPUT;
    profile_free(&profile);
    for (size_t i = 0; i < list.count; i++)
        free(list.paths[i]);
    free(list.paths);
    if (loaded == 0)
        return EXIT_BAD_TRACE;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sprof-analyze: cannot write the report (%s)\n", strerror(errno));
        return EXIT_OUTPUT;
    }
    return status;
}
