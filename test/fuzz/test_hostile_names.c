/* Names in a trace are the traced program's to choose: a function, file,
 * module, thread or command line may hold terminal escapes, newlines,
 * commas and quotes. sprof-analyze must print every one of them with its
 * control characters shown as '?' (README: "Names from a trace are printed
 * with control characters replaced by ?"), keep each table row on one line,
 * and keep each CSV record whole (RFC 4180: quotes doubled, as many fields
 * as the header). Every view: functions, threads, summary, callers and
 * callees.
 *
 * Usage: test_hostile_names SPROF_ANALYZE table|csv
 * Builds the trace with the project's encoder, runs the built analyzer on
 * it, and checks its output byte by byte. */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sprof/trace_format.h"
#include "unit.h"

#define EVIL_FUNCTION "\x1b[31mevil\n,\"x"
#define EVIL_FILE "\x1b[2Jsrc\r\t.c"
#define EVIL_MODULE "/nonexistent/\x1b[5mlib\"x,\n.so"
#define EVIL_THREAD "\x1b[1mthr,\"\n"
#define EVIL_NOTICE "\x1b[?1049hnote\nsecond line"
/* Arguments are NUL-separated in the PROCESS record. */
static const char evil_command[] = "evil\x1b]0;pwned\x07\0--arg\n\r";

/* The same, as they must be printed. */
#define SHOWN_FUNCTION "?[31mevil?,\"x"
#define SHOWN_LOCATION "?[2Jsrc??.c:12"
#define SHOWN_MODULE_FUNCTION "?[5mlib\"x,?.so+0x10"
#define SHOWN_THREAD "?[1mthr,\"?"
#define SHOWN_NOTICE "?[?1049hnote?second line"
#define SHOWN_COMMAND "evil?]0;pwned? --arg??"

static const char *analyzer;
static char trace_path[64];

static void end_record(struct trace_builder *tb)
{
    CHECK(sprof_encoder_end_record(&tb->enc));
    tb->record_count++;
}

static void build_trace(void)
{
    struct trace_builder tb;
    memset(&tb, 0, sizeof tb);
    tb.pid = 4242;
    sprof_encoder_init(&tb.enc);
    sprof_encoder_file_header(&tb.enc, 7, 4242);
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_PROCESS);
    sprof_encoder_u32(&tb.enc, 4242);
    sprof_encoder_u32(&tb.enc, 1);
    sprof_encoder_u64(&tb.enc, 1700000000u);
    sprof_encoder_u32(&tb.enc, 999);
    sprof_encoder_u32(&tb.enc, SPROF_TIMER_PERF_TASK_CLOCK);
    sprof_encoder_u64(&tb.enc, 1001001);
    sprof_encoder_u32(&tb.enc, 256);
    sprof_encoder_u32(&tb.enc, SPROF_PROCESS_ROOT);
    sprof_encoder_string(&tb.enc, "/usr/bin/\x1b[31mevil");
    sprof_encoder_u32(&tb.enc, sizeof evil_command - 1);
    sprof_encoder_bytes(&tb.enc, evil_command, sizeof evil_command - 1);
    sprof_encoder_string(&tb.enc, "SPROF_FREQ: \x1b[31mbad\n");
    end_record(&tb);

    tb_module(&tb, 1, EVIL_MODULE, 0x500000, 0x500000, 0x600000);
    tb_stack(&tb, 1, 0, EVIL_FUNCTION "@" EVIL_FILE ":12;main");
    tb_stack(&tb, 2, 0, "0x500010;main");
    tb_samples(&tb, 4242, 1, 3, 3000000);
    tb_samples(&tb, 4242, 2, 2, 2000000);
    tb_thread(&tb, 4242, EVIL_THREAD, 5000000);
    tb_notice(&tb, SPROF_NOTICE_INFO, EVIL_NOTICE);
    tb_finish(&tb, 5, 5000000);
    tb_write(&tb, trace_path);
    tb_free(&tb);
}

/* Runs the analyzer on the trace with the given options; returns its
 * stdout (malloc'd, NUL-terminated) and checks it exits 0. */
static char *analyze(const char *const *options, size_t *size)
{
    const char *argv[16];
    size_t argc = 0;
    argv[argc++] = analyzer;
    for (; *options; options++)
        argv[argc++] = *options;
    argv[argc++] = trace_path;
    argv[argc] = NULL;
    printf("  sprof-analyze");
    for (size_t i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);

    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pipe_fds[1], STDOUT_FILENO);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        execv(analyzer, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", analyzer, strerror(errno));
        _exit(127);
    }
    close(pipe_fds[1]);
    size_t capacity = 4096, used = 0;
    char *out = malloc(capacity);
    CHECK(out != NULL);
    for (;;) {
        if (capacity - used < 2) {
            capacity *= 2;
            out = realloc(out, capacity);
            CHECK(out != NULL);
        }
        ssize_t n = read(pipe_fds[0], out + used, capacity - used - 1);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0);
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(pipe_fds[0]);
    out[used] = '\0';
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    *size = used;
    return out;
}

/* Every byte is printable (or UTF-8), or the newline that ends a line. */
static void check_no_control_bytes(const char *out, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c == '\n')
            continue;
        if (c < 0x20 || c == 0x7f) {
            size_t line_start = i;
            while (line_start > 0 && out[line_start - 1] != '\n')
                line_start--;
            fprintf(stderr, "control byte 0x%02x at offset %zu, in the line starting: %.60s\n", c,
                    i, out + line_start);
            CHECK(!"a control byte reached the output");
        }
    }
}

/* The line of out that contains part (a copy, or NULL). */
static char *line_with(const char *out, const char *part)
{
    const char *at = strstr(out, part);
    if (!at)
        return NULL;
    const char *start = at, *end = at;
    while (start > out && start[-1] != '\n')
        start--;
    while (*end && *end != '\n')
        end++;
    return strndup(start, (size_t)(end - start));
}

static void test_table(void)
{
    static const char *const by_cumulative[] = {NULL};
    static const char *const by_name[] = {"--sort", "name", NULL};
    const char *const *function_tables[] = {by_cumulative, by_name};
    for (size_t t = 0; t < 2; t++) {
        size_t size;
        char *out = analyze(function_tables[t], &size);
        check_no_control_bytes(out, size);
        CHECK_CONTAINS(out, SHOWN_COMMAND);
        CHECK_CONTAINS(out, SHOWN_NOTICE);
        /* A row stays one line: the name and its location on it, after the
         * figures. */
        char *row = line_with(out, SHOWN_FUNCTION);
        CHECK_CONTAINS(row, SHOWN_LOCATION);
        unsigned long self_n, cum_n;
        double self_s, self_pct;
        CHECK(sscanf(row, "%lu %lf %lf%% %lu", &self_n, &self_s, &self_pct, &cum_n) == 4);
        CHECK_EQ(self_n, 3);
        free(row);
        row = line_with(out, SHOWN_MODULE_FUNCTION);
        CHECK(row != NULL);
        CHECK(sscanf(row, "%lu %lf %lf%% %lu", &self_n, &self_s, &self_pct, &cum_n) == 4);
        CHECK_EQ(self_n, 2);
        free(row);
        free(out);
    }

    static const char *const threads[] = {"--threads", NULL};
    size_t size;
    char *out = analyze(threads, &size);
    check_no_control_bytes(out, size);
    char *row = line_with(out, SHOWN_THREAD);
    CHECK(row != NULL);
    unsigned long pid, tid;
    CHECK(sscanf(row, "%lu %lu", &pid, &tid) == 2);
    CHECK_EQ(tid, 4242);
    free(row);
    free(out);

    static const char *const summary[] = {"--summary", NULL};
    out = analyze(summary, &size);
    check_no_control_bytes(out, size);
    free(out);

    /* --callers and --callees name the functions around the evil one. */
    static const char *const callers[] = {"--callers", "evil", NULL};
    out = analyze(callers, &size);
    check_no_control_bytes(out, size);
    CHECK_CONTAINS(out, SHOWN_FUNCTION);
    free(out);
    static const char *const callees[] = {"--callees", "main", NULL};
    out = analyze(callees, &size);
    check_no_control_bytes(out, size);
    CHECK_CONTAINS(out, SHOWN_FUNCTION);
    CHECK_CONTAINS(out, SHOWN_MODULE_FUNCTION);
    free(out);
}

/* RFC 4180 records of a CSV text: fields (NUL-terminated copies) per
 * record. Fails the test on anything malformed. */
#define CSV_MAX_RECORDS 64
#define CSV_MAX_FIELDS 16
struct csv {
    char *fields[CSV_MAX_RECORDS][CSV_MAX_FIELDS];
    size_t field_count[CSV_MAX_RECORDS];
    size_t record_count;
};

static void parse_csv(const char *text, size_t size, struct csv *csv)
{
    memset(csv, 0, sizeof *csv);
    size_t i = 0;
    while (i < size) {
        CHECK(csv->record_count < CSV_MAX_RECORDS);
        size_t record = csv->record_count++;
        for (;;) {
            CHECK(csv->field_count[record] < CSV_MAX_FIELDS);
            char *field = malloc(size + 1);
            CHECK(field != NULL);
            size_t length = 0;
            if (i < size && text[i] == '"') {
                for (i++;; i++) {
                    CHECK(i < size); /* an unterminated quoted field */
                    if (text[i] == '"') {
                        if (i + 1 < size && text[i + 1] == '"') {
                            field[length++] = '"';
                            i++;
                        } else {
                            i++;
                            break;
                        }
                    } else {
                        field[length++] = text[i];
                    }
                }
            } else {
                for (; i < size && text[i] != ',' && text[i] != '\n'; i++) {
                    CHECK(text[i] != '"'); /* a quote inside an unquoted field */
                    field[length++] = text[i];
                }
            }
            field[length] = '\0';
            csv->fields[record][csv->field_count[record]++] = field;
            CHECK(i < size); /* the last record ends with a newline too */
            if (text[i] == ',') {
                i++;
                continue;
            }
            CHECK(text[i] == '\n'); /* after a closing quote: ',' or the end */
            i++;
            break;
        }
    }
}

static void free_csv(struct csv *csv)
{
    for (size_t r = 0; r < csv->record_count; r++) {
        for (size_t f = 0; f < csv->field_count[r]; f++)
            free(csv->fields[r][f]);
    }
}

/* The column of the CSV's header named name. */
static size_t column(const struct csv *csv, const char *name)
{
    CHECK(csv->record_count > 0);
    for (size_t f = 0; f < csv->field_count[0]; f++) {
        if (!strcmp(csv->fields[0][f], name))
            return f;
    }
    fprintf(stderr, "no column %s in the CSV header\n", name);
    CHECK(!"a CSV column is missing");
    return 0;
}

/* Checks that every record has the header's number of fields and that no
 * field holds a control byte; returns the record whose column named
 * column_name holds want, or fails. */
static size_t check_csv(const struct csv *csv, size_t records, const char *column_name,
                        const char *want)
{
    CHECK_EQ(csv->record_count, records);
    size_t fields = csv->field_count[0];
    size_t at = column(csv, column_name);
    size_t found = SIZE_MAX;
    for (size_t r = 0; r < csv->record_count; r++) {
        CHECK_EQ(csv->field_count[r], fields);
        for (size_t f = 0; f < fields; f++) {
            for (const char *c = csv->fields[r][f]; *c; c++) {
                if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                    fprintf(stderr, "record %zu, field %zu holds control byte 0x%02x\n", r, f,
                            (unsigned char)*c);
                    CHECK(!"a control byte in a CSV field");
                }
            }
        }
        if (want && !strcmp(csv->fields[r][at], want))
            found = r;
    }
    if (want && found == SIZE_MAX) {
        fprintf(stderr, "no record has %s equal to \"%s\"\n", column_name, want);
        CHECK(!"the sanitized name is missing from the CSV");
    }
    return found;
}

static void test_csv(void)
{
    static const char *const functions[] = {"--format", "csv", NULL};
    size_t size;
    char *out = analyze(functions, &size);
    struct csv csv;
    parse_csv(out, size, &csv);
    /* Header, the evil function, main, and the module's bare address. */
    size_t row = check_csv(&csv, 4, "function", SHOWN_FUNCTION);
    CHECK_STR(csv.fields[row][column(&csv, "self_samples")], "3");
    CHECK_STR(csv.fields[row][column(&csv, "location")], SHOWN_LOCATION);
    row = check_csv(&csv, 4, "function", SHOWN_MODULE_FUNCTION);
    CHECK_STR(csv.fields[row][column(&csv, "self_samples")], "2");
    check_no_control_bytes(out, size);
    free_csv(&csv);
    free(out);

    static const char *const threads[] = {"--format", "csv", "--threads", NULL};
    out = analyze(threads, &size);
    parse_csv(out, size, &csv);
    row = check_csv(&csv, 2, "name", SHOWN_THREAD);
    CHECK_STR(csv.fields[row][column(&csv, "tid")], "4242");
    check_no_control_bytes(out, size);
    free_csv(&csv);
    free(out);

    static const char *const callers[] = {"--format", "csv", "--callers", "main", NULL};
    out = analyze(callers, &size);
    parse_csv(out, size, &csv);
    CHECK(csv.record_count >= 2);
    check_csv(&csv, csv.record_count, "function", NULL);
    check_no_control_bytes(out, size);
    free_csv(&csv);
    free(out);

    static const char *const callees[] = {"--format", "csv", "--callees", "main", NULL};
    out = analyze(callees, &size);
    parse_csv(out, size, &csv);
    /* main calls the evil function and the module's address. */
    check_csv(&csv, 3, "callee", SHOWN_FUNCTION);
    check_no_control_bytes(out, size);
    free_csv(&csv);
    free(out);

    static const char *const summary[] = {"--format", "csv", "--summary", NULL};
    out = analyze(summary, &size);
    parse_csv(out, size, &csv);
    CHECK(csv.record_count > 10);
    check_csv(&csv, csv.record_count, "key", "samples");
    check_no_control_bytes(out, size);
    free_csv(&csv);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "table") && strcmp(argv[2], "csv"))) {
        fprintf(stderr, "usage: test_hostile_names SPROF_ANALYZE table|csv\n");
        return 2;
    }
    analyzer = argv[1];
    build_trace();
    static const struct unit_case table[] = {UNIT_CASE(test_table)};
    static const struct unit_case csv[] = {UNIT_CASE(test_csv)};
    if (!strcmp(argv[2], "table"))
        return unit_run(table, 1);
    return unit_run(csv, 1);
}
