/* trace_reader: the file header checks and the record framing, on files
 * that are missing, empty, foreign, cut short or corrupt. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "sprof/trace_format.h"
#include "trace_reader.h"
#include "unit.h"

/* A file header with chosen version and size, then header_size - 32 zeros. */
static void put_header(struct sprof_encoder *enc, uint32_t version, uint32_t header_size)
{
    sprof_encoder_bytes(enc, SPROF_TRACE_MAGIC, SPROF_TRACE_MAGIC_SIZE);
    sprof_encoder_u32(enc, version);
    sprof_encoder_u32(enc, header_size);
    sprof_encoder_u64(enc, 77);
    sprof_encoder_u32(enc, 1234);
    sprof_encoder_u32(enc, 0);
    for (uint32_t i = 32; i < header_size; i++)
        sprof_encoder_bytes(enc, "", 1);
}

/* A record header alone, claiming any type and size. */
static void put_raw_record_header(struct sprof_encoder *enc, uint32_t type, uint32_t size)
{
    sprof_encoder_u32(enc, type);
    sprof_encoder_u32(enc, size);
}

static void put_record(struct sprof_encoder *enc, uint32_t type, const char *payload)
{
    sprof_encoder_begin_record(enc, type);
    sprof_encoder_bytes(enc, payload, strlen(payload));
    CHECK(sprof_encoder_end_record(enc));
}

/* Opens the first size bytes of enc as a trace file. */
static int open_bytes(struct sprof_reader *reader, const struct sprof_encoder *enc, size_t size)
{
    char path[64];
    CHECK(size <= enc->size);
    unit_write_temp(path, enc->data, size);
    return sprof_reader_open(reader, path);
}

static void test_missing_file(void)
{
    char path[64];
    close(unit_temp_file(path));
    CHECK(unlink(path) == 0);
    struct sprof_reader reader;
    CHECK_EQ(sprof_reader_open(&reader, path), -1);
    CHECK_CONTAINS(reader.error, strerror(ENOENT));
    sprof_reader_close(&reader);
}

static void test_empty_file(void)
{
    char path[64];
    close(unit_temp_file(path));
    struct sprof_reader reader;
    CHECK_EQ(sprof_reader_open(&reader, path), -1);
    CHECK_CONTAINS(reader.error, "not an sprof trace");
    sprof_reader_close(&reader);
}

static void test_bad_magic(void)
{
    char path[64];
    static const char text[] = "#!/bin/sh\necho this is a shell script, not a trace\n";
    unit_write_temp(path, text, sizeof text - 1);
    struct sprof_reader reader;
    CHECK_EQ(sprof_reader_open(&reader, path), -1);
    CHECK_CONTAINS(reader.error, "not an sprof trace");
    sprof_reader_close(&reader);

    /* Right length, one byte of the magic wrong. */
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 32);
    enc.data[7] = 'c';
    CHECK_EQ(open_bytes(&reader, &enc, enc.size), -1);
    CHECK_CONTAINS(reader.error, "not an sprof trace");
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);
}

static void test_unsupported_version(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, 4711, 32);
    put_record(&enc, SPROF_REC_END, "");
    struct sprof_reader reader;
    CHECK_EQ(open_bytes(&reader, &enc, enc.size), -1);
    CHECK_CONTAINS(reader.error, "version 4711");
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);
}

static void test_header_cut_short(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 32);
    struct sprof_reader reader;
    /* The magic alone, and all but the last byte. */
    CHECK_EQ(open_bytes(&reader, &enc, SPROF_TRACE_MAGIC_SIZE), -1);
    CHECK_CONTAINS(reader.error, "cut short");
    sprof_reader_close(&reader);
    CHECK_EQ(open_bytes(&reader, &enc, 31), -1);
    CHECK_CONTAINS(reader.error, "cut short");
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);

    /* A header that says it is longer than the file. */
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 48);
    CHECK_EQ(open_bytes(&reader, &enc, 40), -1);
    CHECK_CONTAINS(reader.error, "cut short");
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);
}

static void test_header_size(void)
{
    struct sprof_encoder enc;
    struct sprof_reader reader;
    struct sprof_record record;

    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 16);
    CHECK_EQ(open_bytes(&reader, &enc, enc.size), -1);
    CHECK_CONTAINS(reader.error, "header size 16");
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);

    /* A later revision's longer header: the extra bytes are skipped. */
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 44);
    put_record(&enc, SPROF_REC_END, "");
    CHECK_EQ(open_bytes(&reader, &enc, enc.size), 0);
    CHECK_EQ(reader.header.header_size, 44);
    CHECK_EQ(reader.header.run_id, 77);
    CHECK_EQ(reader.header.pid, 1234);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, SPROF_REC_END);
    CHECK_EQ(record.offset, 44);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_EOF);
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);
}

static void test_oversized_record_is_corrupt(void)
{
    static const uint32_t sizes[] = {SPROF_RECORD_MAX_PAYLOAD + 1, 0xffffffffu};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct sprof_encoder enc;
        sprof_encoder_init(&enc);
        put_header(&enc, SPROF_TRACE_VERSION, 32);
        put_raw_record_header(&enc, SPROF_REC_STACK, sizes[i]);
        /* Enough bytes that a careless reader might not hit end of file. */
        for (int k = 0; k < 64; k++)
            sprof_encoder_u64(&enc, 0);
        struct sprof_reader reader;
        struct sprof_record record;
        CHECK_EQ(open_bytes(&reader, &enc, enc.size), 0);
        CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_CORRUPT);
        CHECK_CONTAINS(reader.error, "corrupt");
        /* Refused from the header alone: nothing was allocated for it. */
        CHECK_EQ(reader.payload_capacity, 0);
        CHECK(reader.payload == NULL);
        sprof_reader_close(&reader);
        sprof_encoder_free(&enc);
    }
}

static void test_type_zero_is_corrupt(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 32);
    put_record(&enc, SPROF_REC_NOTICE, "abcd");
    put_record(&enc, 0, "abc");
    struct sprof_reader reader;
    struct sprof_record record;
    CHECK_EQ(open_bytes(&reader, &enc, enc.size), 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_CORRUPT);
    CHECK_CONTAINS(reader.error, "type 0");
    CHECK_CONTAINS(reader.error, "offset 44");
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);
}

static void test_cut_mid_record(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 32);
    put_record(&enc, SPROF_REC_NOTICE, "first");
    put_record(&enc, SPROF_REC_NOTICE, "second");
    size_t whole = enc.size;
    put_record(&enc, SPROF_REC_NOTICE, "the third, which is cut");

    /* Cut inside the third record's payload, then inside its header. */
    static const size_t keep[] = {8 + 5, 4};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        struct sprof_reader reader;
        struct sprof_record record;
        CHECK_EQ(open_bytes(&reader, &enc, whole + keep[i]), 0);
        CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
        CHECK_EQ(record.size, 5);
        CHECK(memcmp(record.payload, "first", 5) == 0);
        CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
        CHECK_EQ(record.size, 6);
        CHECK(memcmp(record.payload, "second", 6) == 0);
        CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_TRUNCATED);
        CHECK_CONTAINS(reader.error, "trace ends inside a record");
        sprof_reader_close(&reader);
    }
    sprof_encoder_free(&enc);
}

/* Records of many sizes, some larger than the reader's buffer, come back
 * whole across its refills (the reader reads the file in large blocks). */
static void test_records_across_buffer_refills(void)
{
    static const uint32_t sizes[] = {1, 7, 4093, 65536, 300000, 3, 262144, 1000000, 12, 200000};
    uint8_t *payload = malloc(SPROF_RECORD_MAX_PAYLOAD);
    CHECK(payload != NULL);
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 32);
    for (size_t round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            for (uint32_t k = 0; k < sizes[i]; k++)
                payload[k] = (uint8_t)(k * 31 + i + round);
            sprof_encoder_begin_record(&enc, 200);
            sprof_encoder_bytes(&enc, payload, sizes[i]);
            CHECK(sprof_encoder_end_record(&enc));
        }
    }
    struct sprof_reader reader;
    CHECK_EQ(open_bytes(&reader, &enc, enc.size), 0);
    for (size_t round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            struct sprof_record record;
            CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
            CHECK_EQ(record.size, sizes[i]);
            bool same = true;
            for (uint32_t k = 0; k < sizes[i]; k++)
                same = same && record.payload[k] == (uint8_t)(k * 31 + i + round);
            CHECK(same);
        }
    }
    struct sprof_record record;
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_EOF);
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);
    free(payload);
}

static void test_unknown_type_is_returned(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 32);
    put_record(&enc, 200, "from the future");
    put_record(&enc, 0x7fffffffu, "");
    put_record(&enc, SPROF_REC_NOTICE, "after");
    put_record(&enc, SPROF_REC_END, "");

    struct sprof_reader reader;
    struct sprof_record record;
    CHECK_EQ(open_bytes(&reader, &enc, enc.size), 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, 200);
    CHECK_EQ(record.size, 15);
    CHECK(memcmp(record.payload, "from the future", 15) == 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, 0x7fffffffu);
    CHECK_EQ(record.size, 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, SPROF_REC_NOTICE);
    CHECK_EQ(record.offset, 32 + 8 + 15 + 8);
    CHECK(memcmp(record.payload, "after", 5) == 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, SPROF_REC_END);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_EOF);
    /* End of file stays end of file. */
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_EOF);
    sprof_reader_close(&reader);
    sprof_encoder_free(&enc);
}

static void test_open_stream(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    put_header(&enc, SPROF_TRACE_VERSION, 32);
    put_record(&enc, SPROF_REC_NOTICE, "in memory");
    FILE *file = fmemopen(enc.data, enc.size, "rb");
    CHECK(file);
    struct sprof_reader reader;
    struct sprof_record record;
    CHECK_EQ(sprof_reader_open_stream(&reader, file), 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.size, 9);
    CHECK(memcmp(record.payload, "in memory", 9) == 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_EOF);
    sprof_reader_close(&reader); /* closes file */
    sprof_encoder_free(&enc);
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_missing_file),
        UNIT_CASE(test_empty_file),
        UNIT_CASE(test_bad_magic),
        UNIT_CASE(test_unsupported_version),
        UNIT_CASE(test_header_cut_short),
        UNIT_CASE(test_header_size),
        UNIT_CASE(test_oversized_record_is_corrupt),
        UNIT_CASE(test_type_zero_is_corrupt),
        UNIT_CASE(test_cut_mid_record),
        UNIT_CASE(test_records_across_buffer_refills),
        UNIT_CASE(test_unknown_type_is_returned),
        UNIT_CASE(test_open_stream),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
