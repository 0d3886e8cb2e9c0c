/* pprof's format: a gzipped protocol buffer of profile.proto
 * (github.com/google/pprof, proto/profile.proto), read by `pprof`, `go tool
 * pprof`, speedscope and many viewers. The message is small enough to build
 * in memory (one Sample per distinct stack, one Function and Location per
 * function), so it is encoded by hand here rather than through generated
 * code: the fields used are listed below. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hash_map.h"
#include "report.h"
#include "trace_codec.h"

/* profile.proto's field numbers. */
enum {
    PROFILE_SAMPLE_TYPE = 1,
    PROFILE_SAMPLE = 2,
    PROFILE_MAPPING = 3,
    PROFILE_LOCATION = 4,
    PROFILE_FUNCTION = 5,
    PROFILE_STRING_TABLE = 6,
    PROFILE_DURATION_NANOS = 10,
    PROFILE_PERIOD_TYPE = 11,
    PROFILE_PERIOD = 12,
    PROFILE_COMMENT = 13,
    PROFILE_DEFAULT_SAMPLE_TYPE = 14,
    VALUE_TYPE_TYPE = 1,
    VALUE_TYPE_UNIT = 2,
    SAMPLE_LOCATION_ID = 1,
    SAMPLE_VALUE = 2,
    MAPPING_ID = 1,
    MAPPING_FILENAME = 5,
    MAPPING_HAS_FUNCTIONS = 7,
    MAPPING_HAS_FILENAMES = 8,
    MAPPING_HAS_LINE_NUMBERS = 9,
    MAPPING_HAS_INLINE_FRAMES = 10,
    LOCATION_ID = 1,
    LOCATION_MAPPING_ID = 2,
    LOCATION_LINE = 4,
    LINE_FUNCTION_ID = 1,
    LINE_LINE = 2,
    FUNCTION_ID = 1,
    FUNCTION_NAME = 2,
    FUNCTION_SYSTEM_NAME = 3,
    FUNCTION_FILENAME = 4,
};

enum { WIRE_VARINT = 0, WIRE_BYTES = 2 };

/* The project's encoder writes protobuf's varints: the same LEB128. */
static void put_key(struct sprof_encoder *b, uint32_t field, uint32_t wire)
{
    sprof_encoder_varint(b, (uint64_t)field << 3 | wire);
}

static void put_uint_field(struct sprof_encoder *b, uint32_t field, uint64_t value)
{
    put_key(b, field, WIRE_VARINT);
    sprof_encoder_varint(b, value);
}

static void put_bytes_field(struct sprof_encoder *b, uint32_t field, const void *bytes,
                            size_t size)
{
    put_key(b, field, WIRE_BYTES);
    sprof_encoder_varint(b, size);
    sprof_encoder_bytes(b, bytes, size);
}

/* A nested message, built in scratch (emptied first by the caller). */
static void put_message_field(struct sprof_encoder *b, uint32_t field, struct sprof_encoder *scratch)
{
    if (scratch->failed)
        b->failed = true;
    put_bytes_field(b, field, scratch->data, scratch->size);
}

/* pprof's string table: index 0 is "", then each distinct string once. */
struct strings {
    struct sprof_encoder *out;
    struct sprof_map index_by_id;   /* the profile's string id -> pprof index */
    struct sprof_string_table files; /* file names cut from "file:line" */
    struct sprof_map index_by_file; /* files' id -> pprof index */
    uint64_t count;
};

static uint64_t add_string(struct strings *s, const char *text)
{
    put_bytes_field(s->out, PROFILE_STRING_TABLE, text, strlen(text));
    return s->count++;
}

static void free_strings(struct strings *s)
{
    sprof_map_free(&s->index_by_id);
    sprof_map_free(&s->index_by_file);
    sprof_string_table_free(&s->files);
}

/* The pprof index of one of the profile's strings, added on first use. */
static uint64_t string_index(struct strings *s, const struct profile *p, uint32_t id)
{
    uint32_t index;
    if (sprof_map_get(&s->index_by_id, id, &index))
        return index;
    const char *text = sprof_string_table_get(&p->strings, id);
    if (!text || !*text)
        return 0;
    uint64_t added = add_string(s, text);
    if (added > UINT32_MAX || !sprof_map_put(&s->index_by_id, id, (uint32_t)added))
        s->out->failed = true;
    return added;
}

/* The pprof index of a file name cut from a location, added on first use. */
static uint64_t file_index(struct strings *s, const char *file, size_t length)
{
    uint32_t id = sprof_string_table_intern(&s->files, file, length), index;
    if (!id) {
        s->out->failed = true;
        return 0;
    }
    if (sprof_map_get(&s->index_by_file, id, &index))
        return index;
    uint64_t added = add_string(s, sprof_string_table_get(&s->files, id));
    if (added > UINT32_MAX || !sprof_map_put(&s->index_by_file, id, (uint32_t)added))
        s->out->failed = true;
    return added;
}

static void put_value_type(struct sprof_encoder *b, struct sprof_encoder *scratch, uint32_t field,
                           uint64_t type, uint64_t unit)
{
    scratch->size = 0;
    put_uint_field(scratch, VALUE_TYPE_TYPE, type);
    put_uint_field(scratch, VALUE_TYPE_UNIT, unit);
    put_message_field(b, field, scratch);
}

/* Encodes the profile as an uncompressed profile.proto message. */
static bool encode_profile(const struct profile *p, struct sprof_encoder *out)
{
    struct sprof_encoder scratch = {0}, packed = {0};
    struct strings strings = {.out = out};
    sprof_map_init(&strings.index_by_id);
    sprof_map_init(&strings.index_by_file);
    sprof_string_table_init(&strings.files);
    bool *used = calloc(p->function_count ? p->function_count : 1, sizeof *used);
    if (!used) {
        free_strings(&strings);
        return false;
    }

    add_string(&strings, "");
    uint64_t samples_name = add_string(&strings, "samples");
    uint64_t count_unit = add_string(&strings, "count");
    uint64_t cpu_name = add_string(&strings, "cpu");
    uint64_t nanoseconds_unit = add_string(&strings, "nanoseconds");
    put_value_type(out, &scratch, PROFILE_SAMPLE_TYPE, samples_name, count_unit);
    put_value_type(out, &scratch, PROFILE_SAMPLE_TYPE, cpu_name, nanoseconds_unit);

    /* One Sample per distinct stack: its functions' locations, leaf first. */
    for (size_t s = 0; s < p->stack_count; s++) {
        const struct logical_stack *stack = &p->stacks[s];
        if (!stack->samples)
            continue;
        scratch.size = 0;
        packed.size = 0;
        for (uint32_t k = 0; k < stack->depth; k++) {
            uint32_t function = p->frames[stack->first_frame + k];
            used[function] = true;
            sprof_encoder_varint(&packed, (uint64_t)function + 1);
        }
        put_message_field(&scratch, SAMPLE_LOCATION_ID, &packed);
        packed.size = 0;
        sprof_encoder_varint(&packed, stack->samples);
        sprof_encoder_varint(&packed, stack->weight_ns);
        put_message_field(&scratch, SAMPLE_VALUE, &packed);
        put_message_field(out, PROFILE_SAMPLE, &scratch);
    }

    /* A Mapping per module, every one already named, so that pprof neither
     * looks for the binaries nor says it cannot: the program's own first,
     * which pprof takes for the main binary. */
    struct sprof_map mapping_by_module;
    sprof_map_init(&mapping_by_module);
    uint32_t mappings = 0;
    uint32_t main_module = p->process_count ? p->processes[0].executable : 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t f = 0; f < p->function_count; f++) {
            uint32_t module = p->functions[f].module, id;
            if (!used[f] || (pass == 0) != (module == main_module) ||
                sprof_map_get(&mapping_by_module, module, &id))
                continue;
            if (!sprof_map_put(&mapping_by_module, module, ++mappings))
                out->failed = true;
            scratch.size = 0;
            put_uint_field(&scratch, MAPPING_ID, mappings);
            uint64_t filename = string_index(&strings, p, module);
            if (filename)
                put_uint_field(&scratch, MAPPING_FILENAME, filename);
            put_uint_field(&scratch, MAPPING_HAS_FUNCTIONS, 1);
            put_uint_field(&scratch, MAPPING_HAS_FILENAMES, 1);
            put_uint_field(&scratch, MAPPING_HAS_LINE_NUMBERS, 1);
            put_uint_field(&scratch, MAPPING_HAS_INLINE_FRAMES, 1);
            put_message_field(out, PROFILE_MAPPING, &scratch);
        }
    }

    /* A Location and a Function per function: the trace's stacks are already
     * functions (inlined frames expanded), so a location stands for one. */
    struct sprof_encoder line = {0};
    for (size_t f = 0; f < p->function_count; f++) {
        if (!used[f])
            continue;
        const struct function *fn = &p->functions[f];
        const char *location = sprof_string_table_get(&p->strings, fn->location);
        size_t file_length;
        uint64_t line_number = location_line(location, &file_length);

        line.size = 0;
        put_uint_field(&line, LINE_FUNCTION_ID, f + 1);
        if (line_number > 0)
            put_uint_field(&line, LINE_LINE, line_number);
        scratch.size = 0;
        put_uint_field(&scratch, LOCATION_ID, f + 1);
        uint32_t mapping;
        if (sprof_map_get(&mapping_by_module, fn->module, &mapping))
            put_uint_field(&scratch, LOCATION_MAPPING_ID, mapping);
        put_message_field(&scratch, LOCATION_LINE, &line);
        put_message_field(out, PROFILE_LOCATION, &scratch);

        uint64_t name = string_index(&strings, p, fn->name);
        uint64_t filename;
        if (line_number > 0) {
            filename = file_index(&strings, location, file_length);
        } else {
            filename = string_index(&strings, p, fn->module);
        }
        scratch.size = 0;
        put_uint_field(&scratch, FUNCTION_ID, f + 1);
        put_uint_field(&scratch, FUNCTION_NAME, name);
        put_uint_field(&scratch, FUNCTION_SYSTEM_NAME, name);
        if (filename)
            put_uint_field(&scratch, FUNCTION_FILENAME, filename);
        put_message_field(out, PROFILE_FUNCTION, &scratch);
    }

    struct run_totals totals;
    compute_run_totals(p, &totals);
    if (totals.wall_ns)
        put_uint_field(out, PROFILE_DURATION_NANOS, totals.wall_ns);
    put_value_type(out, &scratch, PROFILE_PERIOD_TYPE, cpu_name, nanoseconds_unit);
    if (p->process_count && p->processes[0].period_ns)
        put_uint_field(out, PROFILE_PERIOD, p->processes[0].period_ns);
    if (p->process_count) {
        uint64_t command = string_index(&strings, p, p->processes[0].command);
        if (command)
            put_uint_field(out, PROFILE_COMMENT, command);
    }
    put_uint_field(out, PROFILE_DEFAULT_SAMPLE_TYPE, cpu_name);

    bool ok = !out->failed && !scratch.failed && !packed.failed && !line.failed;
    sprof_encoder_free(&scratch);
    sprof_encoder_free(&packed);
    sprof_encoder_free(&line);
    free(used);
    sprof_map_free(&mapping_by_module);
    free_strings(&strings);
    return ok;
}

/* Writes data gzipped (pprof reads gzip or plain; gzip is its convention). */
static bool write_gzip(FILE *out, const uint8_t *data, size_t length)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15 + 16: a gzip header and trailer rather than zlib's. */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    uint8_t chunk[65536];
    bool ok = true;
    size_t offset = 0;
    int flush;
    do {
        size_t piece = length - offset < (1u << 30) ? length - offset : (1u << 30);
        z.next_in = (Bytef *)(data + offset);
        z.avail_in = (uInt)piece;
        offset += piece;
        flush = offset == length ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = chunk;
            z.avail_out = sizeof chunk;
            if (deflate(&z, flush) == Z_STREAM_ERROR) {
                ok = false;
                break;
            }
            size_t produced = sizeof chunk - z.avail_out;
            if (produced && fwrite(chunk, 1, produced, out) != produced)
                ok = false;
        } while (ok && z.avail_out == 0);
    } while (ok && flush != Z_FINISH);
    deflateEnd(&z);
    return ok;
}

bool print_pprof(FILE *out, const struct profile *profile, char *error, size_t error_size)
{
    struct sprof_encoder message = {0};
    bool ok = encode_profile(profile, &message);
    if (!ok)
        snprintf(error, error_size, "out of memory building the pprof profile");
    else if (!(ok = write_gzip(out, message.data, message.size)))
        snprintf(error, error_size, "cannot write the pprof profile (%s)", strerror(errno));
    sprof_encoder_free(&message);
    return ok;
}
