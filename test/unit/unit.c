#include "unit.h"

#include <errno.h>
#include <unistd.h>

#include "sprof/trace_format.h"

void unit_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    exit(1);
}

void unit_fail_u64(const char *file, int line, const char *what, uint64_t got, uint64_t want)
{
    fprintf(stderr, "%s:%d: check failed: %s (got %llu = 0x%llx, want %llu = 0x%llx)\n", file,
            line, what, (unsigned long long)got, (unsigned long long)got,
            (unsigned long long)want, (unsigned long long)want);
    exit(1);
}

void unit_fail_str(const char *file, int line, const char *what, const char *got,
                   const char *want)
{
    fprintf(stderr, "%s:%d: check failed: %s (got \"%s\", want \"%s\")\n", file, line, what,
            got ? got : "(null)", want);
    exit(1);
}

int unit_run(const struct unit_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        printf("%s\n", cases[i].name);
        fflush(stdout);
        cases[i].run();
    }
    printf("%zu cases passed\n", count);
    return 0;
}

/* Temporary files to remove at exit, failing or not. */
#define MAX_TEMP_FILES 64
static char temp_paths[MAX_TEMP_FILES][64];
static size_t temp_count;

static void remove_temp_files(void)
{
    for (size_t i = 0; i < temp_count; i++)
        unlink(temp_paths[i]);
}

int unit_temp_file(char *path)
{
    if (temp_count == 0)
        atexit(remove_temp_files);
    if (temp_count == MAX_TEMP_FILES) {
        fprintf(stderr, "too many temporary files\n");
        exit(1);
    }
    snprintf(path, 64, "/tmp/sprof-unit-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "mkstemp: %s\n", strerror(errno));
        exit(1);
    }
    snprintf(temp_paths[temp_count++], 64, "%s", path);
    return fd;
}

void unit_write_temp(char *path, const void *data, size_t size)
{
    int fd = unit_temp_file(path);
    const uint8_t *bytes = data;
    while (size > 0) {
        ssize_t n = write(fd, bytes, size);
        if (n <= 0) {
            fprintf(stderr, "write %s: %s\n", path, strerror(errno));
            exit(1);
        }
        bytes += n;
        size -= (size_t)n;
    }
    close(fd);
}

uint8_t *unit_read_all(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    if (!file) {
        fprintf(stderr, "fopen %s: %s\n", path, strerror(errno));
        exit(1);
    }
    size_t capacity = 4096, used = 0;
    uint8_t *data = malloc(capacity);
    size_t got;
    while (data && (got = fread(data + used, 1, capacity - used, file)) > 0) {
        used += got;
        if (used == capacity) {
            capacity *= 2;
            uint8_t *bigger = realloc(data, capacity);
            if (!bigger)
                free(data);
            data = bigger;
        }
    }
    fclose(file);
    if (!data) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    *size = used;
    return data;
}

/* The trace builder. */

static char *copy_text(const char *text, size_t length)
{
    char *copy = strndup(text, length);
    if (!copy) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return copy;
}

static void end_record(struct trace_builder *tb)
{
    if (!sprof_encoder_end_record(&tb->enc)) {
        fprintf(stderr, "trace builder: record dropped\n");
        exit(1);
    }
    tb->record_count++;
}

void tb_init(struct trace_builder *tb, uint64_t run_id, uint32_t pid, uint32_t process_flags)
{
    memset(tb, 0, sizeof *tb);
    tb->pid = pid;
    sprof_encoder_init(&tb->enc);
    sprof_encoder_file_header(&tb->enc, run_id, pid);
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_PROCESS);
    sprof_encoder_u32(&tb->enc, pid);
    sprof_encoder_u32(&tb->enc, 1);           /* ppid */
    sprof_encoder_u64(&tb->enc, 1700000000u); /* start time */
    sprof_encoder_u32(&tb->enc, 99);          /* frequency */
    sprof_encoder_u32(&tb->enc, SPROF_TIMER_THREAD_CPUTIME);
    sprof_encoder_u64(&tb->enc, 10101010);    /* period */
    sprof_encoder_u32(&tb->enc, 128);         /* max depth */
    sprof_encoder_u32(&tb->enc, process_flags);
    sprof_encoder_string(&tb->enc, "/usr/bin/synthetic");
    /* Arguments are NUL-separated; the analyzer joins them with spaces. */
    sprof_encoder_u32(&tb->enc, 12);
    sprof_encoder_bytes(&tb->enc, "synthetic\0-x", 12);
    sprof_encoder_string(&tb->enc, "");
    end_record(tb);
}

void tb_free(struct trace_builder *tb)
{
    sprof_encoder_free(&tb->enc);
    for (size_t i = 0; i < tb->token_count; i++)
        free(tb->tokens[i]);
    for (size_t i = 0; i < tb->string_count; i++)
        free(tb->strings[i]);
    memset(tb, 0, sizeof *tb);
}

static uint32_t string_n(struct trace_builder *tb, const char *text, size_t length)
{
    for (size_t i = 0; i < tb->string_count; i++) {
        if (strlen(tb->strings[i]) == length && memcmp(tb->strings[i], text, length) == 0)
            return (uint32_t)i + 1;
    }
    if (tb->string_count == TB_MAX_STRINGS) {
        fprintf(stderr, "trace builder: too many strings\n");
        exit(1);
    }
    tb->strings[tb->string_count++] = copy_text(text, length);
    uint32_t id = (uint32_t)tb->string_count;
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_STRING);
    sprof_encoder_u32(&tb->enc, id);
    sprof_encoder_bytes(&tb->enc, text, length);
    end_record(tb);
    return id;
}

uint32_t tb_string(struct trace_builder *tb, const char *text)
{
    return string_n(tb, text, strlen(text));
}

struct tb_frame {
    uint32_t function, decl_file, decl_line;
};

/* Parses "name" or "name@file:line" in [text, text + length). */
static struct tb_frame parse_frame(struct trace_builder *tb, const char *text, size_t length)
{
    struct tb_frame frame = {0, 0, 0};
    const char *at = memchr(text, '@', length);
    if (!at) {
        frame.function = string_n(tb, text, length);
        return frame;
    }
    frame.function = string_n(tb, text, (size_t)(at - text));
    const char *file = at + 1;
    const char *colon = memchr(file, ':', length - (size_t)(file - text));
    size_t file_length = colon ? (size_t)(colon - file) : length - (size_t)(file - text);
    frame.decl_file = string_n(tb, file, file_length);
    if (colon)
        frame.decl_line = (uint32_t)strtoul(colon + 1, NULL, 10);
    return frame;
}

uint64_t tb_address(struct trace_builder *tb, const char *token)
{
    for (size_t i = 0; i < tb->token_count; i++) {
        if (!strcmp(tb->tokens[i], token))
            return tb->addresses[i];
    }
    if (tb->token_count == TB_MAX_TOKENS) {
        fprintf(stderr, "trace builder: too many frame tokens\n");
        exit(1);
    }
    size_t index = tb->token_count++;
    tb->tokens[index] = copy_text(token, strlen(token));
    if (!strncmp(token, "0x", 2)) {
        tb->addresses[index] = strtoull(token, NULL, 16);
        return tb->addresses[index];
    }
    /* Far above the bare addresses tests use, so they never collide. */
    uint64_t address = 0x7f0000001000ull + 0x40 * index;
    tb->addresses[index] = address;

    /* Strings first: a STRING record cannot start inside the SYMBOL one. */
    struct tb_frame frames[8];
    uint16_t count = 0;
    const char *start = token;
    for (;;) {
        const char *slash = strchr(start, '/');
        size_t length = slash ? (size_t)(slash - start) : strlen(start);
        if (count == 8) {
            fprintf(stderr, "trace builder: too many inlined frames\n");
            exit(1);
        }
        frames[count++] = parse_frame(tb, start, length);
        if (!slash)
            break;
        start = slash + 1;
    }
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_SYMBOL);
    sprof_encoder_u64(&tb->enc, address);
    sprof_encoder_u32(&tb->enc, SPROF_MODULE_NONE);
    sprof_encoder_u16(&tb->enc, count);
    sprof_encoder_u16(&tb->enc, SPROF_SYMBOL_DWARF);
    for (uint16_t i = 0; i < count; i++) {
        sprof_encoder_u32(&tb->enc, frames[i].function);
        sprof_encoder_u32(&tb->enc, frames[i].decl_file); /* file of the line */
        sprof_encoder_u32(&tb->enc, frames[i].decl_line + 1);
        sprof_encoder_u32(&tb->enc, frames[i].decl_file);
        sprof_encoder_u32(&tb->enc, frames[i].decl_line);
    }
    end_record(tb);
    return address;
}

void tb_stack(struct trace_builder *tb, uint32_t stack_id, uint16_t flags, const char *frames)
{
    uint64_t addresses[SPROF_STACK_MAX_DEPTH];
    uint16_t depth = 0;
    const char *start = frames;
    while (*start) {
        const char *semicolon = strchr(start, ';');
        size_t length = semicolon ? (size_t)(semicolon - start) : strlen(start);
        char token[2048];
        if (length >= sizeof token || depth == SPROF_STACK_MAX_DEPTH) {
            fprintf(stderr, "trace builder: stack too long\n");
            exit(1);
        }
        memcpy(token, start, length);
        token[length] = '\0';
        addresses[depth++] = tb_address(tb, token);
        if (!semicolon)
            break;
        start = semicolon + 1;
    }
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_STACK);
    sprof_encoder_u32(&tb->enc, stack_id);
    sprof_encoder_u16(&tb->enc, depth);
    sprof_encoder_u16(&tb->enc, flags);
    for (uint16_t i = 0; i < depth; i++)
        sprof_encoder_u64(&tb->enc, addresses[i]);
    end_record(tb);
}

void tb_samples(struct trace_builder *tb, uint32_t tid, uint32_t stack_id, uint32_t samples,
                uint64_t weight_ns)
{
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_SAMPLES);
    sprof_encoder_u32(&tb->enc, tid);
    sprof_encoder_u32(&tb->enc, 1);
    sprof_encoder_u32(&tb->enc, stack_id);
    sprof_encoder_u32(&tb->enc, samples);
    sprof_encoder_u64(&tb->enc, weight_ns);
    end_record(tb);
}

void tb_module_identified(struct trace_builder *tb, uint32_t module_id, const char *path,
                          uint64_t load_bias, uint64_t start, uint64_t end,
                          const uint8_t *build_id, uint32_t build_id_size)
{
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_MODULE);
    sprof_encoder_u32(&tb->enc, module_id);
    sprof_encoder_u32(&tb->enc, build_id_size);
    sprof_encoder_u64(&tb->enc, load_bias);
    sprof_encoder_u64(&tb->enc, start);
    sprof_encoder_u64(&tb->enc, end);
    sprof_encoder_bytes(&tb->enc, build_id, build_id_size);
    sprof_encoder_string(&tb->enc, path);
    end_record(tb);
}

void tb_module(struct trace_builder *tb, uint32_t module_id, const char *path,
               uint64_t load_bias, uint64_t start, uint64_t end)
{
    static const uint8_t build_id[4] = {1, 2, 3, 4};
    tb_module_identified(tb, module_id, path, load_bias, start, end, build_id, sizeof build_id);
}

void tb_thread(struct trace_builder *tb, uint32_t tid, const char *name, uint64_t cpu_ns)
{
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_THREAD);
    sprof_encoder_u32(&tb->enc, tid);
    sprof_encoder_u32(&tb->enc, 0);
    sprof_encoder_u64(&tb->enc, cpu_ns);
    sprof_encoder_u64(&tb->enc, 0); /* samples: the analyzer recounts them */
    sprof_encoder_u64(&tb->enc, 0);
    sprof_encoder_string(&tb->enc, name);
    end_record(tb);
}

void tb_notice(struct trace_builder *tb, uint32_t kind, const char *text)
{
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_NOTICE);
    sprof_encoder_u32(&tb->enc, kind);
    sprof_encoder_string(&tb->enc, text);
    end_record(tb);
}

void tb_finish(struct trace_builder *tb, uint64_t samples, uint64_t weight_ns)
{
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_SUMMARY);
    sprof_encoder_u64(&tb->enc, 2000000000u); /* wall */
    sprof_encoder_u64(&tb->enc, 1500000000u); /* user */
    sprof_encoder_u64(&tb->enc, 250000000u);  /* system */
    sprof_encoder_u64(&tb->enc, 1000000u);    /* profiler */
    sprof_encoder_u64(&tb->enc, 4321);        /* max rss */
    sprof_encoder_u64(&tb->enc, samples);
    sprof_encoder_u64(&tb->enc, weight_ns);
    sprof_encoder_u64(&tb->enc, 3);           /* lost */
    sprof_encoder_u64(&tb->enc, 0);           /* truncated */
    sprof_encoder_u32(&tb->enc, 1);           /* threads */
    sprof_encoder_u32(&tb->enc, 0);
    end_record(tb);
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_END);
    end_record(tb);
}

void tb_write(struct trace_builder *tb, char *path)
{
    if (tb->enc.failed) {
        fprintf(stderr, "trace builder: out of memory\n");
        exit(1);
    }
    unit_write_temp(path, tb->enc.data, tb->enc.size);
}
