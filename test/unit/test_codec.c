/* trace_codec: encoding every record type, reading it back through the
 * reader and decoder, the byte layout, and the decoder's bounds. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "sprof/trace_format.h"
#include "trace_reader.h"
#include "unit.h"
#include "varint.h"

static const uint8_t build_id[20] = {0xde, 0xad, 0xbe, 0xef, 1, 2,  3,  4,  5,  6,
                                     7,    8,    9,    10,   11, 12, 13, 14, 15, 16};

/* One record of every type, each field a distinct value so that swapped or
 * misplaced fields show. */
static void encode_all_records(struct sprof_encoder *enc)
{
    sprof_encoder_file_header(enc, 0x0123456789abcdefull, 4242);

    sprof_encoder_begin_record(enc, SPROF_REC_PROCESS);
    sprof_encoder_u32(enc, 4242);
    sprof_encoder_u32(enc, 4241);
    sprof_encoder_u64(enc, 1700000000123456789ull);
    sprof_encoder_u32(enc, 997);
    sprof_encoder_u32(enc, SPROF_TIMER_PERF_TASK_CLOCK);
    sprof_encoder_u64(enc, 1003009);
    sprof_encoder_u32(enc, 512);
    sprof_encoder_u32(enc, SPROF_PROCESS_ROOT | SPROF_PROCESS_KERNEL_SAMPLED);
    sprof_encoder_string(enc, "/bin/prog");
    sprof_encoder_string(enc, "prog");
    sprof_encoder_string(enc, NULL); /* written as "" */
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_MODULE);
    sprof_encoder_u32(enc, 7);
    sprof_encoder_u32(enc, sizeof build_id);
    sprof_encoder_u64(enc, 0x555500000000ull);
    sprof_encoder_u64(enc, 0x555500001000ull);
    sprof_encoder_u64(enc, 0x555500009000ull);
    sprof_encoder_bytes(enc, build_id, sizeof build_id);
    sprof_encoder_string(enc, "/lib/libx.so");
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_THREAD);
    sprof_encoder_u32(enc, 4243);
    sprof_encoder_u32(enc, 0);
    sprof_encoder_u64(enc, 123456789012ull);
    sprof_encoder_u64(enc, 12345);
    sprof_encoder_u64(enc, 123450000000ull);
    sprof_encoder_string(enc, "worker");
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_STACK);
    sprof_encoder_u32(enc, 99);
    sprof_encoder_u16(enc, 3);
    sprof_encoder_u16(enc, SPROF_STACK_TRUNCATED);
    sprof_encoder_u64(enc, 0x555500001234ull);
    sprof_encoder_u64(enc, 0x555500002345ull);
    sprof_encoder_u64(enc, 0xffffffffffffffffull);
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_SAMPLES);
    sprof_encoder_u32(enc, 4243);
    sprof_encoder_u32(enc, 2);
    sprof_encoder_u32(enc, 99);
    sprof_encoder_u32(enc, 17);
    sprof_encoder_u64(enc, 170000000);
    sprof_encoder_u32(enc, 98);
    sprof_encoder_u32(enc, 0xffffffffu);
    sprof_encoder_u64(enc, 1);
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_STRING);
    sprof_encoder_u32(enc, 5);
    sprof_encoder_bytes(enc, "main", 4);
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_SYMBOL);
    sprof_encoder_u64(enc, 0x555500001234ull);
    sprof_encoder_u32(enc, 7);
    sprof_encoder_u16(enc, 1);
    sprof_encoder_u16(enc, SPROF_SYMBOL_DWARF);
    sprof_encoder_u32(enc, 5);
    sprof_encoder_u32(enc, 6);
    sprof_encoder_u32(enc, 41);
    sprof_encoder_u32(enc, 8);
    sprof_encoder_u32(enc, 40);
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_SUMMARY);
    for (uint64_t i = 1; i <= 9; i++)
        sprof_encoder_u64(enc, i * 1000000007ull);
    sprof_encoder_u32(enc, 3);
    sprof_encoder_u32(enc, 0);
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_NOTICE);
    sprof_encoder_u32(enc, SPROF_NOTICE_KERNEL_EXCLUDED);
    sprof_encoder_string(enc, "system calls are not sampled");
    CHECK(sprof_encoder_end_record(enc));

    sprof_encoder_begin_record(enc, SPROF_REC_END);
    CHECK(sprof_encoder_end_record(enc));
    CHECK(!enc->failed);
}

static void check_string(struct sprof_decoder *dec, const char *want)
{
    const char *text;
    uint32_t length;
    CHECK(sprof_decoder_string(dec, &text, &length));
    CHECK_EQ(length, strlen(want));
    CHECK(memcmp(text, want, length) == 0);
}

/* Reads the next record, checks its type, and starts a decoder on it. */
static void next_record(struct sprof_reader *reader, struct sprof_decoder *dec, uint32_t type,
                        uint32_t size)
{
    struct sprof_record record;
    uint64_t offset = reader->offset;
    CHECK_EQ(sprof_reader_next(reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, type);
    CHECK_EQ(record.size, size);
    CHECK_EQ(record.offset, offset);
    sprof_decoder_init(dec, record.payload, record.size);
}

static void test_round_trip_every_record(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    encode_all_records(&enc);
    char path[64];
    int fd = unit_temp_file(path);
    CHECK_EQ(sprof_encoder_flush(&enc, fd), 0);
    CHECK_EQ(enc.size, 0);
    close(fd);
    sprof_encoder_free(&enc);

    struct sprof_reader reader;
    CHECK(sprof_reader_open(&reader, path) == 0);
    CHECK(memcmp(reader.header.magic, SPROF_TRACE_MAGIC, SPROF_TRACE_MAGIC_SIZE) == 0);
    CHECK_EQ(reader.header.version, SPROF_TRACE_VERSION);
    CHECK_EQ(reader.header.header_size, 32);
    CHECK_EQ(reader.header.run_id, 0x0123456789abcdefull);
    CHECK_EQ(reader.header.pid, 4242);
    CHECK_EQ(reader.header.reserved, 0);
    CHECK_EQ(reader.offset, 32);

    struct sprof_decoder dec;
    next_record(&reader, &dec, SPROF_REC_PROCESS, 40 + (4 + 9) + (4 + 4) + 4);
    CHECK_EQ(sprof_decoder_u32(&dec), 4242);
    CHECK_EQ(sprof_decoder_u32(&dec), 4241);
    CHECK_EQ(sprof_decoder_u64(&dec), 1700000000123456789ull);
    CHECK_EQ(sprof_decoder_u32(&dec), 997);
    CHECK_EQ(sprof_decoder_u32(&dec), SPROF_TIMER_PERF_TASK_CLOCK);
    CHECK_EQ(sprof_decoder_u64(&dec), 1003009);
    CHECK_EQ(sprof_decoder_u32(&dec), 512);
    CHECK_EQ(sprof_decoder_u32(&dec), SPROF_PROCESS_ROOT | SPROF_PROCESS_KERNEL_SAMPLED);
    check_string(&dec, "/bin/prog");
    check_string(&dec, "prog");
    check_string(&dec, "");
    CHECK(dec.ok);
    CHECK_EQ(sprof_decoder_remaining(&dec), 0);

    next_record(&reader, &dec, SPROF_REC_MODULE, 32 + sizeof build_id + 4 + 12);
    CHECK_EQ(sprof_decoder_u32(&dec), 7);
    CHECK_EQ(sprof_decoder_u32(&dec), sizeof build_id);
    CHECK_EQ(sprof_decoder_u64(&dec), 0x555500000000ull);
    CHECK_EQ(sprof_decoder_u64(&dec), 0x555500001000ull);
    CHECK_EQ(sprof_decoder_u64(&dec), 0x555500009000ull);
    const uint8_t *id = sprof_decoder_bytes(&dec, sizeof build_id);
    CHECK(id && memcmp(id, build_id, sizeof build_id) == 0);
    check_string(&dec, "/lib/libx.so");
    CHECK(dec.ok);
    CHECK_EQ(sprof_decoder_remaining(&dec), 0);

    next_record(&reader, &dec, SPROF_REC_THREAD, 32 + 4 + 6);
    CHECK_EQ(sprof_decoder_u32(&dec), 4243);
    CHECK_EQ(sprof_decoder_u32(&dec), 0);
    CHECK_EQ(sprof_decoder_u64(&dec), 123456789012ull);
    CHECK_EQ(sprof_decoder_u64(&dec), 12345);
    CHECK_EQ(sprof_decoder_u64(&dec), 123450000000ull);
    check_string(&dec, "worker");
    CHECK_EQ(sprof_decoder_remaining(&dec), 0);

    next_record(&reader, &dec, SPROF_REC_STACK, 8 + 3 * 8);
    CHECK_EQ(sprof_decoder_u32(&dec), 99);
    CHECK_EQ(sprof_decoder_u16(&dec), 3);
    CHECK_EQ(sprof_decoder_u16(&dec), SPROF_STACK_TRUNCATED);
    CHECK_EQ(sprof_decoder_u64(&dec), 0x555500001234ull);
    CHECK_EQ(sprof_decoder_u64(&dec), 0x555500002345ull);
    CHECK_EQ(sprof_decoder_u64(&dec), 0xffffffffffffffffull);
    CHECK(dec.ok);
    CHECK_EQ(sprof_decoder_remaining(&dec), 0);

    next_record(&reader, &dec, SPROF_REC_SAMPLES, 8 + 2 * 16);
    CHECK_EQ(sprof_decoder_u32(&dec), 4243);
    CHECK_EQ(sprof_decoder_u32(&dec), 2);
    CHECK_EQ(sprof_decoder_u32(&dec), 99);
    CHECK_EQ(sprof_decoder_u32(&dec), 17);
    CHECK_EQ(sprof_decoder_u64(&dec), 170000000);
    CHECK_EQ(sprof_decoder_u32(&dec), 98);
    CHECK_EQ(sprof_decoder_u32(&dec), 0xffffffffu);
    CHECK_EQ(sprof_decoder_u64(&dec), 1);
    CHECK(dec.ok);

    /* A STRING's text runs to the record's end, with no length prefix. */
    next_record(&reader, &dec, SPROF_REC_STRING, 4 + 4);
    CHECK_EQ(sprof_decoder_u32(&dec), 5);
    const uint8_t *text = sprof_decoder_bytes(&dec, sprof_decoder_remaining(&dec));
    CHECK(text && memcmp(text, "main", 4) == 0);

    next_record(&reader, &dec, SPROF_REC_SYMBOL, 16 + 20);
    CHECK_EQ(sprof_decoder_u64(&dec), 0x555500001234ull);
    CHECK_EQ(sprof_decoder_u32(&dec), 7);
    CHECK_EQ(sprof_decoder_u16(&dec), 1);
    CHECK_EQ(sprof_decoder_u16(&dec), SPROF_SYMBOL_DWARF);
    CHECK_EQ(sprof_decoder_u32(&dec), 5);
    CHECK_EQ(sprof_decoder_u32(&dec), 6);
    CHECK_EQ(sprof_decoder_u32(&dec), 41);
    CHECK_EQ(sprof_decoder_u32(&dec), 8);
    CHECK_EQ(sprof_decoder_u32(&dec), 40);
    CHECK(dec.ok);

    next_record(&reader, &dec, SPROF_REC_SUMMARY, 80);
    for (uint64_t i = 1; i <= 9; i++)
        CHECK_EQ(sprof_decoder_u64(&dec), i * 1000000007ull);
    CHECK_EQ(sprof_decoder_u32(&dec), 3);
    CHECK_EQ(sprof_decoder_u32(&dec), 0);
    CHECK(dec.ok);

    next_record(&reader, &dec, SPROF_REC_NOTICE, 4 + 4 + 28);
    CHECK_EQ(sprof_decoder_u32(&dec), SPROF_NOTICE_KERNEL_EXCLUDED);
    check_string(&dec, "system calls are not sampled");

    next_record(&reader, &dec, SPROF_REC_END, 0);

    struct sprof_record record;
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_EOF);
    sprof_reader_close(&reader);
}

static void test_little_endian_layout(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    sprof_encoder_file_header(&enc, 0x0807060504030201ull, 0xa1b2c3d4u);
    sprof_encoder_begin_record(&enc, 0x0102);
    sprof_encoder_u32(&enc, 0x11223344u);
    sprof_encoder_u16(&enc, 0x5566);
    sprof_encoder_u64(&enc, 0x8899aabbccddeeffull);
    CHECK(sprof_encoder_end_record(&enc));
    char path[64];
    unit_write_temp(path, enc.data, enc.size);
    sprof_encoder_free(&enc);

    /* The file's bytes, not the encoder's buffer: what another machine reads. */
    size_t size;
    uint8_t *bytes = unit_read_all(path, &size);
    static const uint8_t want[] = {
        's',  'p',  'r',  'o',  'f',  'T',  'R',  'C',  /* magic */
        0x02, 0x00, 0x00, 0x00,                         /* version */
        0x20, 0x00, 0x00, 0x00,                         /* header size */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* run id */
        0xd4, 0xc3, 0xb2, 0xa1,                         /* pid */
        0x00, 0x00, 0x00, 0x00,                         /* reserved */
        0x02, 0x01, 0x00, 0x00,                         /* record type */
        0x0e, 0x00, 0x00, 0x00,                         /* payload size 14 */
        0x44, 0x33, 0x22, 0x11,                         /* u32 */
        0x66, 0x55,                                     /* u16 */
        0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, /* u64 */
    };
    CHECK_EQ(size, sizeof want);
    for (size_t i = 0; i < sizeof want; i++) {
        if (bytes[i] != want[i]) {
            fprintf(stderr, "byte %zu is 0x%02x, want 0x%02x\n", i, bytes[i], want[i]);
            CHECK(bytes[i] == want[i]);
        }
    }
    free(bytes);
}

static void test_varint_round_trip(void)
{
    static const uint64_t values[] = {0,           1,           127,        128,
                                      300,         16383,       16384,      (1u << 21) - 1,
                                      1u << 21,    (1u << 28) - 1, 1u << 28, UINT32_MAX,
                                      (uint64_t)1 << 63, UINT64_MAX};
    static const uint32_t sizes[] = {1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5, 10, 10};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint8_t bytes[SPROF_VARINT_MAX];
        CHECK_EQ(sprof_varint_put(bytes, values[i]), sizes[i]);
        const uint8_t *cursor = bytes;
        uint64_t value = 0;
        CHECK(sprof_varint_get(&cursor, bytes + sizes[i], &value));
        CHECK_EQ(value, values[i]);
        CHECK(cursor == bytes + sizes[i]);
        /* One byte short: refused, cursor unmoved. */
        cursor = bytes;
        CHECK(!sprof_varint_get(&cursor, bytes + sizes[i] - 1, &value));
        CHECK(cursor == bytes);
        /* Through the decoder, last in its bytes or followed by another
         * value (its short path reads ahead), and one byte short. */
        uint8_t then[SPROF_VARINT_MAX + 1];
        memcpy(then, bytes, sizes[i]);
        then[sizes[i]] = 42;
        struct sprof_decoder dec;
        sprof_decoder_init(&dec, then, sizes[i]);
        CHECK_EQ(sprof_decoder_varint(&dec), values[i]);
        CHECK(dec.ok && sprof_decoder_remaining(&dec) == 0);
        sprof_decoder_init(&dec, then, sizes[i] + 1);
        CHECK_EQ(sprof_decoder_varint(&dec), values[i]);
        CHECK_EQ(sprof_decoder_varint(&dec), 42);
        CHECK(dec.ok);
        sprof_decoder_init(&dec, then, sizes[i] - 1);
        CHECK_EQ(sprof_decoder_varint(&dec), 0);
        CHECK(!dec.ok);
        /* sprof_varint_get_fast: the same, unrolled or not. */
        uint8_t spare[2 * SPROF_VARINT_MAX] = {0};
        memcpy(spare, bytes, sizes[i]);
        for (size_t room = sizes[i] - 1; room <= sizes[i] + SPROF_VARINT_MAX; room++) {
            cursor = spare;
            value = 0;
            bool read = sprof_varint_get_fast(&cursor, spare + room, &value);
            CHECK(read == (room >= sizes[i]));
            CHECK_EQ(value, (read ? values[i] : 0));
            CHECK(cursor == spare + (read ? sizes[i] : 0));
        }
        /* Followed by more bytes than any value takes (the decoder's
         * unrolled path), then two more values. */
        uint8_t padded[3 * SPROF_VARINT_MAX] = {0};
        memcpy(padded, bytes, sizes[i]);
        sprof_varint_put(padded + sizes[i], values[i]);
        sprof_decoder_init(&dec, padded, sizeof padded);
        CHECK_EQ(sprof_decoder_varint(&dec), values[i]);
        CHECK_EQ(sprof_decoder_varint(&dec), values[i]);
        CHECK_EQ(sprof_decoder_remaining(&dec), sizeof padded - 2 * sizes[i]);
        CHECK_EQ(sprof_decoder_varint(&dec), 0);
        CHECK(dec.ok);
    }
    /* 300 is 0xac 0x02, low group first. */
    uint8_t bytes[SPROF_VARINT_MAX];
    sprof_varint_put(bytes, 300);
    CHECK_EQ(bytes[0], 0xac);
    CHECK_EQ(bytes[1], 0x02);
    static const int64_t deltas[] = {0, -1, 1, -2, 2, INT64_MIN, INT64_MAX};
    static const uint64_t zigzags[] = {0, 1, 2, 3, 4, UINT64_MAX, UINT64_MAX - 1};
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        CHECK_EQ(sprof_zigzag(deltas[i]), zigzags[i]);
        CHECK(sprof_unzigzag(zigzags[i]) == deltas[i]);
    }
}

static void test_varint_hostile(void)
{
    /* Eleven continuation bytes: longer than any 64-bit value. */
    static const uint8_t endless[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                        0x80, 0x80, 0x80, 0x80, 0x00};
    const uint8_t *cursor = endless;
    uint64_t value;
    CHECK(!sprof_varint_get(&cursor, endless + sizeof endless, &value));
    /* A tenth byte above 1 overflows 64 bits. */
    static const uint8_t overflow[10] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0x02};
    cursor = overflow;
    CHECK(!sprof_varint_get(&cursor, overflow + sizeof overflow, &value));
    CHECK(!sprof_varint_get_fast(&cursor, overflow + sizeof overflow, &value));
    cursor = endless;
    CHECK(!sprof_varint_get_fast(&cursor, endless + sizeof endless, &value));
    CHECK(cursor == endless);
    /* Through the decoder: failure sticks and yields 0. */
    struct sprof_decoder dec;
    sprof_decoder_init(&dec, endless, sizeof endless);
    CHECK_EQ(sprof_decoder_varint(&dec), 0);
    CHECK(!dec.ok);
    static const uint8_t two[] = {0x05, 0x96, 0x01};
    sprof_decoder_init(&dec, two, sizeof two);
    CHECK_EQ(sprof_decoder_varint(&dec), 5);
    CHECK_EQ(sprof_decoder_varint(&dec), 150);
    CHECK(dec.ok);
    CHECK_EQ(sprof_decoder_remaining(&dec), 0);
}

static void test_decoder_bounds(void)
{
    static const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
    struct sprof_decoder dec;

    sprof_decoder_init(&dec, data, sizeof data);
    CHECK_EQ(sprof_decoder_u32(&dec), 0x04030201u);
    CHECK(dec.ok);
    /* Two bytes left: a u32 does not fit, and yields 0 without moving. */
    CHECK_EQ(sprof_decoder_u32(&dec), 0);
    CHECK(!dec.ok);
    CHECK_EQ(sprof_decoder_remaining(&dec), 2);
    /* Once failed, every read fails, even one that would fit. */
    CHECK_EQ(sprof_decoder_u16(&dec), 0);
    CHECK(sprof_decoder_bytes(&dec, 0) == NULL);

    sprof_decoder_init(&dec, data, sizeof data);
    CHECK_EQ(sprof_decoder_u64(&dec), 0);
    CHECK(!dec.ok);

    sprof_decoder_init(&dec, data, sizeof data);
    CHECK(sprof_decoder_bytes(&dec, 7) == NULL);
    CHECK(!dec.ok);

    sprof_decoder_init(&dec, data, sizeof data);
    CHECK(sprof_decoder_bytes(&dec, 6) == data);
    CHECK(dec.ok);
    CHECK_EQ(sprof_decoder_remaining(&dec), 0);
    CHECK_EQ(sprof_decoder_u16(&dec), 0);
    CHECK(!dec.ok);

    sprof_decoder_init(&dec, data, 0);
    CHECK_EQ(sprof_decoder_u16(&dec), 0);
    CHECK(!dec.ok);
}

static void test_decoder_string_bounds(void)
{
    /* Length 5, but only 4 bytes follow. */
    static const uint8_t short_string[] = {0x05, 0x00, 0x00, 0x00, 'a', 'b', 'c', 'd'};
    struct sprof_decoder dec;
    const char *text = NULL;
    uint32_t length = 99;
    sprof_decoder_init(&dec, short_string, sizeof short_string);
    CHECK(!sprof_decoder_string(&dec, &text, &length));
    CHECK(!dec.ok);
    CHECK_EQ(length, 0);
    CHECK_STR(text, "");

    /* A huge length must not wrap the bounds check. */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a'};
    sprof_decoder_init(&dec, huge, sizeof huge);
    CHECK(!sprof_decoder_string(&dec, &text, &length));
    CHECK_EQ(length, 0);

    /* The length itself cut short. */
    sprof_decoder_init(&dec, short_string, 3);
    CHECK(!sprof_decoder_string(&dec, &text, &length));

    /* Exactly fitting is fine. */
    uint8_t fits[sizeof short_string];
    memcpy(fits, short_string, sizeof fits);
    fits[0] = 4;
    sprof_decoder_init(&dec, fits, sizeof fits);
    CHECK(sprof_decoder_string(&dec, &text, &length));
    CHECK_EQ(length, 4);
    CHECK(memcmp(text, "abcd", 4) == 0);
    CHECK(dec.ok);
}

static void test_encoder_drops_oversized_record(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    sprof_encoder_file_header(&enc, 1, 2);
    size_t before = enc.size;

    uint8_t *big = calloc(SPROF_RECORD_MAX_PAYLOAD + 1, 1);
    CHECK(big);
    sprof_encoder_begin_record(&enc, SPROF_REC_STRING);
    sprof_encoder_bytes(&enc, big, SPROF_RECORD_MAX_PAYLOAD + 1);
    CHECK(!sprof_encoder_end_record(&enc));
    CHECK_EQ(enc.size, before);
    CHECK(!enc.failed);

    /* The largest allowed payload is kept. */
    sprof_encoder_begin_record(&enc, SPROF_REC_STRING);
    sprof_encoder_u32(&enc, 1);
    sprof_encoder_bytes(&enc, big, SPROF_RECORD_MAX_PAYLOAD - 4);
    CHECK(sprof_encoder_end_record(&enc));
    CHECK_EQ(enc.size, before + 8 + SPROF_RECORD_MAX_PAYLOAD);
    free(big);

    sprof_encoder_begin_record(&enc, SPROF_REC_END);
    CHECK(sprof_encoder_end_record(&enc));

    /* Nothing of the dropped record is left behind: the reader sees the
     * file header, the full-size record, then END. */
    char path[64];
    unit_write_temp(path, enc.data, enc.size);
    sprof_encoder_free(&enc);
    struct sprof_reader reader;
    struct sprof_record record;
    CHECK(sprof_reader_open(&reader, path) == 0);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, SPROF_REC_STRING);
    CHECK_EQ(record.size, SPROF_RECORD_MAX_PAYLOAD);
    CHECK_EQ(record.offset, 32);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_RECORD);
    CHECK_EQ(record.type, SPROF_REC_END);
    CHECK_EQ(record.offset, 32 + 8 + SPROF_RECORD_MAX_PAYLOAD);
    CHECK_EQ(sprof_reader_next(&reader, &record), SPROF_READ_EOF);
    sprof_reader_close(&reader);
}

static void test_encoder_string_null_and_flush_error(void)
{
    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    sprof_encoder_string(&enc, NULL);
    sprof_encoder_string(&enc, "ab");
    CHECK_EQ(enc.size, 4 + 4 + 2);
    static const uint8_t want[] = {0, 0, 0, 0, 2, 0, 0, 0, 'a', 'b'};
    CHECK(memcmp(enc.data, want, sizeof want) == 0);

    /* A failed write keeps the data for a later attempt. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(sprof_encoder_flush(&enc, fd), EBADF);
    close(fd);
    CHECK_EQ(enc.size, sizeof want);
    CHECK(memcmp(enc.data, want, sizeof want) == 0);
    sprof_encoder_free(&enc);
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_round_trip_every_record),
        UNIT_CASE(test_little_endian_layout),
        UNIT_CASE(test_varint_round_trip),
        UNIT_CASE(test_varint_hostile),
        UNIT_CASE(test_decoder_bounds),
        UNIT_CASE(test_decoder_string_bounds),
        UNIT_CASE(test_encoder_drops_oversized_record),
        UNIT_CASE(test_encoder_string_null_and_flush_error),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
