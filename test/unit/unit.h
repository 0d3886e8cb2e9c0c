/* What every unit test shares: checks that stop the test with file:line,
 * a runner, temporary files, and a builder for synthetic traces. */
#ifndef SPROF_UNIT_H
#define SPROF_UNIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_codec.h"

/* Exit status meson reads as "skipped". */
#define UNIT_SKIP 77

void unit_fail(const char *file, int line, const char *what);
void unit_fail_u64(const char *file, int line, const char *what, uint64_t got, uint64_t want);
void unit_fail_str(const char *file, int line, const char *what, const char *got,
                   const char *want);

#define CHECK(cond) \
    do { \
        if (!(cond)) \
            unit_fail(__FILE__, __LINE__, #cond); \
    } while (0)

/* Prints both values, which a bare CHECK(a == b) cannot. */
#define CHECK_EQ(got, want) \
    do { \
        uint64_t got_ = (uint64_t)(got), want_ = (uint64_t)(want); \
        if (got_ != want_) \
            unit_fail_u64(__FILE__, __LINE__, #got " == " #want, got_, want_); \
    } while (0)

#define CHECK_STR(got, want) \
    do { \
        const char *got_ = (got), *want_ = (want); \
        if (!got_ || strcmp(got_, want_) != 0) \
            unit_fail_str(__FILE__, __LINE__, #got " equals " #want, got_, want_); \
    } while (0)

#define CHECK_CONTAINS(text, part) \
    do { \
        const char *text_ = (text), *part_ = (part); \
        if (!text_ || !strstr(text_, part_)) \
            unit_fail_str(__FILE__, __LINE__, #text " contains " #part, text_, part_); \
    } while (0)

struct unit_case {
    const char *name;
    void (*run)(void);
};
#define UNIT_CASE(fn) {#fn, fn}

/* Runs every case in order; a failing check exits at once with status 1. */
int unit_run(const struct unit_case *cases, size_t count);

/* A new empty file in /tmp, removed when the test exits. Writes its path
 * (at least 64 bytes) and returns an fd open for writing. */
int unit_temp_file(char *path);
/* Writes size bytes to a new temporary file; returns its path in path. */
void unit_write_temp(char *path, const void *data, size_t size);
/* The whole content of a file, malloc'd; *size gets its length. */
uint8_t *unit_read_all(const char *path, size_t *size);

/* Builds a trace with sprof_encoder from a compact description of stacks.
 *
 * A stack is written "leaf;caller;...;root". Each frame token names one
 * address, given its own address and SYMBOL record on first use:
 *   "name"            one function
 *   "name@file:line"  the same, declared at file:line
 *   "inner/outer"     one address, an inlined frame inside outer
 *   "0x1234"          a bare address with no SYMBOL record */
#define TB_MAX_TOKENS 64
#define TB_MAX_STRINGS 128

struct trace_builder {
    struct sprof_encoder enc;
    uint32_t pid;
    char *tokens[TB_MAX_TOKENS];
    uint64_t addresses[TB_MAX_TOKENS];
    size_t token_count;
    char *strings[TB_MAX_STRINGS]; /* trace string id i + 1 */
    size_t string_count;
    uint32_t record_count; /* whole records written after the header */
};

/* Writes the file header and a PROCESS record for pid. */
void tb_init(struct trace_builder *tb, uint64_t run_id, uint32_t pid, uint32_t process_flags);
void tb_free(struct trace_builder *tb);
/* The trace string id for text, written as a STRING record on first use. */
uint32_t tb_string(struct trace_builder *tb, const char *text);
/* The address a frame token stands for (see above). */
uint64_t tb_address(struct trace_builder *tb, const char *token);
void tb_stack(struct trace_builder *tb, uint32_t stack_id, uint16_t flags, const char *frames);
void tb_samples(struct trace_builder *tb, uint32_t tid, uint32_t stack_id, uint32_t samples,
                uint64_t weight_ns);
/* A module whose file the analyzer will not open: its build id is made up. */
void tb_module(struct trace_builder *tb, uint32_t module_id, const char *path,
               uint64_t load_bias, uint64_t start, uint64_t end);
/* A module with the build id its file has. */
void tb_module_identified(struct trace_builder *tb, uint32_t module_id, const char *path,
                          uint64_t load_bias, uint64_t start, uint64_t end,
                          const uint8_t *build_id, uint32_t build_id_size);
void tb_thread(struct trace_builder *tb, uint32_t tid, const char *name, uint64_t cpu_ns);
void tb_notice(struct trace_builder *tb, uint32_t kind, const char *text);
/* SUMMARY with the given counts, then END. */
void tb_finish(struct trace_builder *tb, uint64_t samples, uint64_t weight_ns);
/* Writes what is built so far to a temporary file. */
void tb_write(struct trace_builder *tb, char *path);

#endif
