/* Every size a trace states, at its most hostile (about 4 GB, or the
 * largest count its field holds), after a few good records: the analyzer
 * must read up to the bad record, keep what came before, and never
 * allocate what the field claims. alloc_limit.c aborts the program on any
 * allocation over 64 MB; each trace also goes through the fuzz target's
 * whole path (fuzz_trace.c: every report). */
#include "sprof/trace_format.h"
#include "unit.h"

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A PROCESS record, one stack and one sample: what must survive. */
static void good_start(struct trace_builder *tb)
{
    tb_init(tb, 21, 700, SPROF_PROCESS_ROOT);
    tb_stack(tb, 1, 0, "work;main");
    tb_samples(tb, 700, 1, 1, 1000000);
}

static void begin(struct trace_builder *tb, uint32_t type)
{
    sprof_encoder_begin_record(&tb->enc, type);
}

static void end(struct trace_builder *tb)
{
    CHECK(sprof_encoder_end_record(&tb->enc));
    tb->record_count++;
}

/* A record header whose size is far more than the file holds. */
static void record_size(struct trace_builder *tb, uint32_t type, uint32_t size)
{
    sprof_encoder_u32(&tb->enc, type);
    sprof_encoder_u32(&tb->enc, size);
    for (int i = 0; i < 4; i++)
        sprof_encoder_u32(&tb->enc, 0xffffffffu);
}

static void check_loads(struct trace_builder *tb, const char *what, bool expect_warning)
{
    printf("  %s\n", what);
    fflush(stdout);
    char path[64];
    tb_write(tb, path);
    struct profile p;
    profile_init(&p);
    char error[512], warning[512];
    int records = profile_load_file(&p, path, error, sizeof error, warning, sizeof warning);
    if (records < 0)
        fprintf(stderr, "%s: %s\n", what, error);
    CHECK(records >= 3);
    CHECK_EQ(p.total_samples, 1);
    if (expect_warning)
        CHECK(warning[0] != '\0');
    profile_free(&p);
    LLVMFuzzerTestOneInput(tb->enc.data, tb->enc.size);
    tb_free(tb);
}

static void test_record_sizes(void)
{
    static const uint32_t types[] = {SPROF_REC_SAMPLES, SPROF_REC_STACK,  SPROF_REC_STRING,
                                     SPROF_REC_FRAMES,  SPROF_REC_NODE_SAMPLES, 4000};
    static const uint32_t sizes[] = {0xffffffffu, 0xfffffff0u, 0x80000000u,
                                     SPROF_RECORD_MAX_PAYLOAD + 1};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            struct trace_builder tb;
            good_start(&tb);
            record_size(&tb, types[t], sizes[s]);
            char what[96];
            snprintf(what, sizeof what, "record of type %u claiming %u bytes", types[t], sizes[s]);
            check_loads(&tb, what, true);
        }
    }
}

static void test_largest_record_allowed(void)
{
    /* The largest payload the format allows is read whole, and skipped
     * (an unknown type). */
    struct trace_builder tb;
    good_start(&tb);
    begin(&tb, 4000);
    uint8_t *zeros = calloc(1, SPROF_RECORD_MAX_PAYLOAD);
    CHECK(zeros != NULL);
    sprof_encoder_bytes(&tb.enc, zeros, SPROF_RECORD_MAX_PAYLOAD);
    free(zeros);
    end(&tb);
    check_loads(&tb, "an unknown record of the largest size allowed", false);
}

static void test_counts(void)
{
    struct trace_builder tb;

    good_start(&tb);
    begin(&tb, SPROF_REC_SAMPLES);
    sprof_encoder_u32(&tb.enc, 700);
    sprof_encoder_u32(&tb.enc, 0xffffffffu); /* entry count */
    sprof_encoder_u32(&tb.enc, 1);
    sprof_encoder_u32(&tb.enc, 5);
    sprof_encoder_u64(&tb.enc, 5000);
    end(&tb);
    check_loads(&tb, "SAMPLES claiming 2^32-1 entries", true);

    good_start(&tb);
    begin(&tb, SPROF_REC_STACK);
    sprof_encoder_u32(&tb.enc, 2);
    sprof_encoder_u16(&tb.enc, 0xffff); /* depth */
    sprof_encoder_u16(&tb.enc, 0);
    sprof_encoder_u64(&tb.enc, 0x1000);
    end(&tb);
    check_loads(&tb, "STACK of depth 65535", true);

    good_start(&tb);
    begin(&tb, SPROF_REC_SYMBOL);
    sprof_encoder_u64(&tb.enc, 0x1000);
    sprof_encoder_u32(&tb.enc, SPROF_MODULE_NONE);
    sprof_encoder_u16(&tb.enc, 0xffff); /* frames */
    sprof_encoder_u16(&tb.enc, 0);
    for (int i = 0; i < 5; i++)
        sprof_encoder_u32(&tb.enc, 1);
    end(&tb);
    check_loads(&tb, "SYMBOL of 65535 frames", true);

    good_start(&tb);
    begin(&tb, SPROF_REC_MODULE);
    sprof_encoder_u32(&tb.enc, 3);
    sprof_encoder_u32(&tb.enc, 0xffffffffu); /* build-id size */
    sprof_encoder_u64(&tb.enc, 0);
    sprof_encoder_u64(&tb.enc, 0x1000);
    sprof_encoder_u64(&tb.enc, 0x2000);
    sprof_encoder_u32(&tb.enc, 0);
    end(&tb);
    check_loads(&tb, "MODULE with a 4 GB build-id", true);

    static const uint32_t kinds[] = {SPROF_CALLS_FUNCTIONS, SPROF_CALLS_EDGES};
    for (size_t k = 0; k < 2; k++) {
        good_start(&tb);
        begin(&tb, SPROF_REC_CALL_COUNTS);
        sprof_encoder_u32(&tb.enc, 700);
        sprof_encoder_u32(&tb.enc, 1);
        sprof_encoder_u32(&tb.enc, kinds[k]);
        sprof_encoder_u32(&tb.enc, 0xffffffffu); /* entries */
        sprof_encoder_u64(&tb.enc, 0);
        sprof_encoder_u64(&tb.enc, 0x1000);
        sprof_encoder_u64(&tb.enc, 0x2000);
        sprof_encoder_u64(&tb.enc, 3);
        end(&tb);
        check_loads(&tb, "CALL_COUNTS claiming 2^32-1 entries", true);
    }
}

/* The compact records' varint ids and counts at their most hostile. */
static void test_compact_records(void)
{
    struct trace_builder tb;

    /* A table whose first node is past the format's limit. */
    good_start(&tb);
    begin(&tb, SPROF_REC_FRAMES);
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 0xffffffffu);
    sprof_encoder_varint(&tb.enc, 0);
    sprof_encoder_varint(&tb.enc, 0x1000);
    end(&tb);
    check_loads(&tb, "FRAMES starting at node 2^32-1", true);

    /* Gaps at the limit in many tables: the placeholders are bounded. */
    good_start(&tb);
    for (uint32_t table = 1; table <= 8; table++) {
        begin(&tb, SPROF_REC_FRAMES);
        sprof_encoder_varint(&tb.enc, table);
        sprof_encoder_varint(&tb.enc, SPROF_FRAME_TABLE_MAX_NODES);
        sprof_encoder_varint(&tb.enc, 0);
        sprof_encoder_varint(&tb.enc, 0x1000);
        end(&tb);
    }
    check_loads(&tb, "FRAMES gaps of 2^20 nodes in 8 tables", true);

    /* A parent that does not precede its node. */
    good_start(&tb);
    begin(&tb, SPROF_REC_FRAMES);
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 5 << 1);
    sprof_encoder_varint(&tb.enc, 0x1000);
    end(&tb);
    check_loads(&tb, "FRAMES node whose parent comes after it", true);

    /* A chain of nodes deeper than any stack may be. */
    good_start(&tb);
    begin(&tb, SPROF_REC_FRAMES);
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 0);
    sprof_encoder_varint(&tb.enc, 0x1000);
    for (uint32_t i = 0; i < SPROF_STACK_MAX_DEPTH + 10; i++) {
        sprof_encoder_varint(&tb.enc, 1 << 1);
        sprof_encoder_varint(&tb.enc, 2);
    }
    end(&tb);
    begin(&tb, SPROF_REC_NODE_SAMPLES); /* a sample at the deepest */
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 700);
    sprof_encoder_varint(&tb.enc, 1000);
    sprof_encoder_varint(&tb.enc, (uint64_t)(SPROF_STACK_MAX_DEPTH + 11) << 1);
    end(&tb);
    check_loads(&tb, "a sample 1035 nodes deep", true);

    /* Sample counts and weights at their largest; an endless varint. */
    good_start(&tb);
    begin(&tb, SPROF_REC_NODE_SAMPLES);
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 700);
    sprof_encoder_varint(&tb.enc, UINT64_MAX);
    sprof_encoder_varint(&tb.enc, 1 << 1 | 1);
    sprof_encoder_varint(&tb.enc, UINT64_MAX);
    end(&tb);
    check_loads(&tb, "NODE_SAMPLES of 2^63 samples", true);

    good_start(&tb);
    begin(&tb, SPROF_REC_NODE_SAMPLES);
    for (int i = 0; i < 3; i++)
        sprof_encoder_varint(&tb.enc, 1);
    for (int i = 0; i < 12; i++)
        sprof_encoder_bytes(&tb.enc, "\xff", 1);
    end(&tb);
    check_loads(&tb, "NODE_SAMPLES with a 12-byte varint", true);

    /* A chain claiming 65535 frames; names pointing at no chain. */
    good_start(&tb);
    begin(&tb, SPROF_REC_CHAIN);
    sprof_encoder_u32(&tb.enc, 1);
    sprof_encoder_u32(&tb.enc, SPROF_MODULE_NONE);
    sprof_encoder_u16(&tb.enc, 0xffff);
    sprof_encoder_u16(&tb.enc, 0);
    for (int i = 0; i < 4; i++)
        sprof_encoder_varint(&tb.enc, 1);
    end(&tb);
    check_loads(&tb, "CHAIN of 65535 frames", true);

    good_start(&tb);
    begin(&tb, SPROF_REC_ADDRESS_NAMES);
    sprof_encoder_varint(&tb.enc, 0x1000);
    sprof_encoder_varint(&tb.enc, 0xffffffffu);
    end(&tb);
    check_loads(&tb, "ADDRESS_NAMES naming an undefined chain", true);
}

/* A length-prefixed string claiming 4 GB, in each record that has one. */
static void test_string_lengths(void)
{
    struct trace_builder tb;

    good_start(&tb);
    begin(&tb, SPROF_REC_THREAD);
    sprof_encoder_u32(&tb.enc, 700);
    sprof_encoder_u32(&tb.enc, 0);
    sprof_encoder_u64(&tb.enc, 1);
    sprof_encoder_u64(&tb.enc, 1);
    sprof_encoder_u64(&tb.enc, 1);
    sprof_encoder_u32(&tb.enc, 0xfffffff0u);
    sprof_encoder_bytes(&tb.enc, "name", 4);
    end(&tb);
    check_loads(&tb, "THREAD name of 4 GB", true);

    good_start(&tb);
    begin(&tb, SPROF_REC_NOTICE);
    sprof_encoder_u32(&tb.enc, SPROF_NOTICE_INFO);
    sprof_encoder_u32(&tb.enc, 0xffffffffu);
    sprof_encoder_bytes(&tb.enc, "note", 4);
    end(&tb);
    check_loads(&tb, "NOTICE text of 4 GB", true);

    good_start(&tb);
    begin(&tb, SPROF_REC_MODULE);
    sprof_encoder_u32(&tb.enc, 3);
    sprof_encoder_u32(&tb.enc, 0);
    sprof_encoder_u64(&tb.enc, 0);
    sprof_encoder_u64(&tb.enc, 0x1000);
    sprof_encoder_u64(&tb.enc, 0x2000);
    sprof_encoder_u32(&tb.enc, 0xffffffffu); /* path length */
    sprof_encoder_bytes(&tb.enc, "/lib", 4);
    end(&tb);
    check_loads(&tb, "MODULE path of 4 GB", true);

    /* A second PROCESS record, its command line claiming 4 GB. */
    good_start(&tb);
    begin(&tb, SPROF_REC_PROCESS);
    sprof_encoder_u32(&tb.enc, 700);
    sprof_encoder_u32(&tb.enc, 1);
    sprof_encoder_u64(&tb.enc, 0);
    sprof_encoder_u32(&tb.enc, 99);
    sprof_encoder_u32(&tb.enc, SPROF_TIMER_THREAD_CPUTIME);
    sprof_encoder_u64(&tb.enc, 10101010);
    sprof_encoder_u32(&tb.enc, 128);
    sprof_encoder_u32(&tb.enc, SPROF_PROCESS_ROOT);
    sprof_encoder_string(&tb.enc, "/bin/x");
    sprof_encoder_u32(&tb.enc, 0xffffffffu);
    sprof_encoder_bytes(&tb.enc, "x", 1);
    end(&tb);
    check_loads(&tb, "PROCESS command line of 4 GB", true);
}

static void test_header_size(void)
{
    /* The file header's own size field: refused before any record. */
    static const uint32_t sizes[] = {0xffffffffu, 0x10000u, 4097, 31, 0};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        struct sprof_encoder enc;
        sprof_encoder_init(&enc);
        sprof_encoder_bytes(&enc, SPROF_TRACE_MAGIC, SPROF_TRACE_MAGIC_SIZE);
        sprof_encoder_u32(&enc, SPROF_TRACE_VERSION);
        sprof_encoder_u32(&enc, sizes[s]);
        sprof_encoder_u64(&enc, 1);
        sprof_encoder_u64(&enc, 1);
        char path[64];
        unit_write_temp(path, enc.data, enc.size);
        printf("  file header claiming %u bytes\n", sizes[s]);
        struct profile p;
        profile_init(&p);
        char error[512], warning[512];
        CHECK(profile_load_file(&p, path, error, sizeof error, warning, sizeof warning) < 0);
        profile_free(&p);
        LLVMFuzzerTestOneInput(enc.data, enc.size);
        sprof_encoder_free(&enc);
    }
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_record_sizes), UNIT_CASE(test_largest_record_allowed),
        UNIT_CASE(test_compact_records),
        UNIT_CASE(test_counts),       UNIT_CASE(test_string_lengths),
        UNIT_CASE(test_header_size),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
