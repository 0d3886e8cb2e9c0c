/* profile_load_file: what a trace's records become in the profile, traces
 * cut short or corrupt, and several traces merged into one profile. */
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libelf.h>
#include <link.h>
#include <unistd.h>

#include "sprof/trace_format.h"
#include "report.h"
#include "unit_profile.h"
#include "varint.h"

/* Loads the first size bytes of tb; returns what profile_load_file did. */
static int load_prefix(struct profile *profile, struct trace_builder *tb, size_t size,
                       char *error, char *warning)
{
    char path[64];
    CHECK(size <= tb->enc.size);
    unit_write_temp(path, tb->enc.data, size);
    error[0] = '\0';
    return profile_load_file(profile, path, error, 256, warning, 256);
}

static const char *text(const struct profile *profile, uint32_t id)
{
    return sprof_string_table_get(&profile->strings, id);
}

static void test_process_summary_threads(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 4242, SPROF_PROCESS_ROOT);
    tb_stack(&tb, 1, 0, "work;main");
    tb_samples(&tb, 4243, 1, 5, 50000000);
    tb_thread(&tb, 4243, "worker", 60000000);
    tb_notice(&tb, SPROF_NOTICE_KERNEL_EXCLUDED, "system calls are not sampled");
    tb_notice(&tb, SPROF_NOTICE_KERNEL_EXCLUDED, "system calls are not sampled");
    tb_notice(&tb, SPROF_NOTICE_INFO, "something else");
    tb_finish(&tb, 5, 50000000);

    struct profile p;
    profile_init(&p);
    load_built(&p, &tb);
    tb_free(&tb);
    CHECK_EQ(p.process_count, 1);
    const struct process_info *pr = &p.processes[0];
    CHECK(pr->has_process_record);
    CHECK(pr->has_summary);
    CHECK(pr->ended_cleanly);
    CHECK(!pr->symbolized_here); /* every address had a SYMBOL record */
    CHECK_EQ(pr->pid, 4242);
    CHECK_EQ(pr->ppid, 1);
    CHECK_EQ(pr->frequency_hz, 99);
    CHECK_EQ(pr->timer_kind, SPROF_TIMER_THREAD_CPUTIME);
    CHECK_EQ(pr->period_ns, 10101010);
    CHECK_EQ(pr->max_depth, 128);
    CHECK_EQ(pr->flags, SPROF_PROCESS_ROOT);
    CHECK_STR(text(&p, pr->executable), "/usr/bin/synthetic");
    CHECK_STR(text(&p, pr->command), "synthetic -x");
    CHECK_STR(text(&p, pr->warnings), "");
    CHECK_EQ(pr->wall_ns, 2000000000u);
    CHECK_EQ(pr->user_ns, 1500000000u);
    CHECK_EQ(pr->system_ns, 250000000u);
    CHECK_EQ(pr->profiler_cpu_ns, 1000000u);
    CHECK_EQ(pr->max_rss_kb, 4321);
    CHECK_EQ(pr->summary_samples, 5);
    CHECK_EQ(pr->summary_weight_ns, 50000000);
    CHECK_EQ(pr->lost, 3);
    CHECK_EQ(pr->truncated, 0);
    CHECK_EQ(pr->summary_threads, 1);

    CHECK_EQ(p.thread_count, 1);
    CHECK_EQ(p.threads[0].process, 0);
    CHECK_EQ(p.threads[0].tid, 4243);
    CHECK_STR(text(&p, p.threads[0].name), "worker");
    CHECK_EQ(p.threads[0].cpu_ns, 60000000);
    CHECK_EQ(p.threads[0].samples, 5);
    CHECK_EQ(p.threads[0].weight_ns, 50000000);

    /* Repeated notices are kept once. */
    CHECK_EQ(p.notice_count, 2);
    CHECK_STR(p.notices[0], "system calls are not sampled");
    CHECK_STR(p.notices[1], "something else");
    profile_free(&p);
}

static void test_bare_addresses(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    /* Module paths that are not absolute are never opened with libdw, so
     * their addresses stay unnamed whatever the machine has installed. */
    tb_module(&tb, 3, "[vdso]", 0x10000, 0x10000, 0x11000);
    tb_module(&tb, 4, "build/libfoo.so", 0x200000, 0x201000, 0x209000);
    /* A SYMBOL that could not name its address: frame_count 0. */
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_SYMBOL);
    sprof_encoder_u64(&tb.enc, 0x5678);
    sprof_encoder_u32(&tb.enc, SPROF_MODULE_NONE);
    sprof_encoder_u16(&tb.enc, 0);
    sprof_encoder_u16(&tb.enc, 0);
    CHECK(sprof_encoder_end_record(&tb.enc));
    tb.record_count++;
    tb_stack(&tb, 1, 0, "0x1234;0x10034;0x201abc;0x5678;main");
    tb_samples(&tb, 100, 1, 2, 20);
    tb_finish(&tb, 2, 20);

    struct profile p;
    profile_init(&p);
    load_built(&p, &tb);
    tb_free(&tb);
    const struct logical_stack *s = &p.stacks[0];
    CHECK_EQ(s->depth, 5);
    const uint32_t *frames = p.frames + s->first_frame;
    CHECK_STR(function_name(&p, frames[0]), "0x1234");
    CHECK_STR(function_name(&p, frames[1]), "[vdso]+0x34");
    CHECK_STR(function_name(&p, frames[2]), "libfoo.so+0x1abc");
    CHECK_STR(function_name(&p, frames[3]), "0x5678");
    CHECK_STR(function_name(&p, frames[4]), "main");
    /* An address in a module is located in it. */
    const struct function *foo = &p.functions[frames[2]];
    CHECK_STR(text(&p, foo->module), "build/libfoo.so");
    CHECK_STR(text(&p, foo->location), "libfoo.so");
    CHECK_STR(text(&p, p.functions[frames[0]].module), "");
    profile_free(&p);
}

/* A function is its name, declaration and module: addresses that share
 * all of them share the function (the analyzer remembers it by the
 * frame's string ids), and any difference makes another. */
static void test_functions_shared_by_addresses(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "work@a.c:5/one@a.c:1;main");
    tb_stack(&tb, 2, 0, "work@a.c:5/two@a.c:2;main");
    tb_stack(&tb, 3, 0, "work@a.c:6;main");
    tb_stack(&tb, 4, 0, "work@b.c:5;main");
    tb_stack(&tb, 5, 0, "work@a.c:5;main");
    uint64_t in_module = tb_address(&tb, "work@a.c:5");
    tb_module(&tb, 7, "build/libbar.so", 0, in_module, in_module + 1);
    for (uint32_t stack = 1; stack <= 5; stack++)
        tb_samples(&tb, 100, stack, 1, 10);
    tb_finish(&tb, 5, 50);

    struct profile p;
    profile_init(&p);
    load_built(&p, &tb);
    tb_free(&tb);
    CHECK_EQ(p.stack_count, 5);
    uint32_t work[5];
    for (size_t i = 0; i < 5; i++) {
        work[i] = p.frames[p.stacks[i].first_frame];
        CHECK_STR(function_name(&p, work[i]), "work");
    }
    CHECK_EQ(work[0], work[1]); /* two addresses, one function */
    for (size_t i = 1; i < 5; i++) {
        for (size_t k = i + 1; k < 5; k++)
            CHECK(work[i] != work[k]);
    }
    CHECK_STR(text(&p, p.functions[work[2]].location), "a.c:6");
    CHECK_STR(text(&p, p.functions[work[3]].location), "b.c:5");
    CHECK_STR(text(&p, p.functions[work[4]].module), "build/libbar.so");
    CHECK_STR(text(&p, p.functions[work[0]].module), "");
    profile_free(&p);
}

static void test_cut_mid_record(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "work;main");
    tb_samples(&tb, 100, 1, 4, 40);
    uint32_t whole = tb.record_count;
    size_t whole_size = tb.enc.size;
    tb_samples(&tb, 100, 1, 1000, 10000);
    tb_finish(&tb, 1004, 10040);

    /* Cut inside the second SAMPLES record: its batch is not counted. */
    struct profile p;
    char error[256], warning[256];
    profile_init(&p);
    int records = load_prefix(&p, &tb, whole_size + 8 + 12, error, warning);
    CHECK_EQ(records, whole);
    CHECK(warning[0] != '\0');
    CHECK_CONTAINS(warning, "trace ends inside a record");
    char before[64];
    snprintf(before, sizeof before, "read the %u records before it", whole);
    CHECK_CONTAINS(warning, before);
    CHECK_EQ(p.process_count, 1);
    CHECK(!p.processes[0].has_summary);
    CHECK(!p.processes[0].ended_cleanly);
    CHECK_EQ(p.total_samples, 4);
    CHECK_EQ(p.total_weight_ns, 40);
    size_t count;
    struct function_stats *stats = compute_function_stats(&p, SORT_CUMULATIVE, &count);
    CHECK_EQ(count, 2);
    CHECK_EQ(stats_named(&p, stats, count, "work")->self_samples, 4);
    free(stats);
    profile_free(&p);

    /* Cut inside the last record's header. */
    profile_init(&p);
    records = load_prefix(&p, &tb, tb.enc.size - 3, error, warning);
    CHECK_EQ(records, tb.record_count - 1);
    CHECK_CONTAINS(warning, "trace ends inside a record header");
    CHECK(p.processes[0].has_summary);
    CHECK(!p.processes[0].ended_cleanly);
    CHECK_EQ(p.total_samples, 1004);
    profile_free(&p);
    tb_free(&tb);
}

static void test_corrupt_record_stops_reading(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "work;main");
    tb_samples(&tb, 100, 1, 4, 40);
    uint32_t whole = tb.record_count;
    uint64_t offset = tb.enc.size;
    /* A STACK claiming 5 addresses that holds 2. */
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_STACK);
    sprof_encoder_u32(&tb.enc, 2);
    sprof_encoder_u16(&tb.enc, 5);
    sprof_encoder_u16(&tb.enc, 0);
    sprof_encoder_u64(&tb.enc, 0x1000);
    sprof_encoder_u64(&tb.enc, 0x2000);
    CHECK(sprof_encoder_end_record(&tb.enc));
    tb_samples(&tb, 100, 1, 6, 60); /* after the corrupt record: not read */
    tb_finish(&tb, 10, 100);

    struct profile p;
    char error[256], warning[256];
    profile_init(&p);
    int records = load_prefix(&p, &tb, tb.enc.size, error, warning);
    tb_free(&tb);
    CHECK_EQ(records, whole);
    char want[128];
    snprintf(want, sizeof want, "corrupt record of type %u at offset %llu", SPROF_REC_STACK,
             (unsigned long long)offset);
    CHECK_CONTAINS(warning, want);
    CHECK_EQ(p.total_samples, 4);
    CHECK_EQ(p.stack_count, 1);
    profile_free(&p);
}

static void test_unknown_record_skipped(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "work;main");
    sprof_encoder_begin_record(&tb.enc, 4000);
    sprof_encoder_u64(&tb.enc, 0xfeedface);
    CHECK(sprof_encoder_end_record(&tb.enc));
    tb.record_count++;
    tb_samples(&tb, 100, 1, 4, 40);
    tb_finish(&tb, 4, 40);

    struct profile p;
    profile_init(&p);
    load_built(&p, &tb);
    tb_free(&tb);
    CHECK_EQ(p.total_samples, 4);
    CHECK(p.processes[0].ended_cleanly);
    profile_free(&p);
}

static void test_no_usable_record(void)
{
    struct profile p;
    char error[256], warning[256];

    /* The first record cut short, and the first record corrupt. */
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    profile_init(&p);
    CHECK_EQ(load_prefix(&p, &tb, 32 + 4, error, warning), -1);
    CHECK_CONTAINS(error, "no usable record");
    CHECK_CONTAINS(error, "trace ends inside a record header");
    CHECK_STR(warning, "");
    CHECK_EQ(load_prefix(&p, &tb, tb.enc.size - 1, error, warning), -1);
    CHECK_CONTAINS(error, "trace ends inside a record");
    CHECK_EQ(p.process_count, 0); /* nothing merged */
    tb_free(&tb);

    sprof_encoder_init(&tb.enc);
    sprof_encoder_file_header(&tb.enc, 1, 100);
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_PROCESS);
    sprof_encoder_u32(&tb.enc, 100); /* and nothing more */
    CHECK(sprof_encoder_end_record(&tb.enc));
    CHECK_EQ(load_prefix(&p, &tb, tb.enc.size, error, warning), -1);
    CHECK_CONTAINS(error, "corrupt record of type 1");
    CHECK_EQ(p.process_count, 0);
    sprof_encoder_free(&tb.enc);

    /* Not a trace at all. */
    char path[64];
    unit_write_temp(path, "hello, world\n", 13);
    CHECK_EQ(profile_load_file(&p, path, error, sizeof error, warning, sizeof warning), -1);
    CHECK_CONTAINS(error, "not an sprof trace");

    CHECK(unlink(path) == 0);
    CHECK_EQ(profile_load_file(&p, path, error, sizeof error, warning, sizeof warning), -1);
    CHECK_CONTAINS(error, strerror(ENOENT));
    CHECK_EQ(p.process_count, 0);
    CHECK_EQ(p.function_count, 0);
    profile_free(&p);
}

static void test_two_files_merge(void)
{
    struct trace_builder a, b;
    tb_init(&a, 9, 100, SPROF_PROCESS_ROOT);
    tb_stack(&a, 1, 0, "work;main");
    tb_samples(&a, 100, 1, 3, 30);
    tb_finish(&a, 3, 30);

    /* The child: other addresses, ids and tids that clash with the parent's. */
    tb_init(&b, 9, 200, 0);
    tb_address(&b, "padding");
    tb_stack(&b, 1, 0, "other;main");
    tb_stack(&b, 2, 0, "work;main");
    tb_samples(&b, 100, 1, 5, 55);
    tb_samples(&b, 100, 2, 7, 77);
    tb_finish(&b, 12, 132);

    struct profile p;
    profile_init(&p);
    load_built(&p, &a);
    load_built(&p, &b);
    tb_free(&a);
    tb_free(&b);

    CHECK_EQ(p.process_count, 2);
    CHECK_EQ(p.processes[0].pid, 100);
    CHECK_EQ(p.processes[1].pid, 200);
    /* Thread 100 of each process is its own thread. */
    CHECK_EQ(p.thread_count, 2);
    CHECK_EQ(p.threads[0].process, 0);
    CHECK_EQ(p.threads[0].samples, 3);
    CHECK_EQ(p.threads[1].process, 1);
    CHECK_EQ(p.threads[1].samples, 12);
    CHECK_EQ(p.total_samples, 15);
    CHECK_EQ(p.total_weight_ns, 162);

    /* Stack id 1 means different stacks in the two files. */
    size_t count;
    struct function_stats *stats = compute_function_stats(&p, SORT_CUMULATIVE, &count);
    check_invariants(&p, stats, count);
    CHECK_EQ(count, 3);
    const struct function_stats *work = stats_named(&p, stats, count, "work");
    CHECK_EQ(work->self_samples, 10);
    CHECK_EQ(work->self_weight_ns, 107);
    CHECK_EQ(stats_named(&p, stats, count, "other")->self_weight_ns, 55);
    CHECK_EQ(stats_named(&p, stats, count, "main")->cumulative_weight_ns, 162);
    free(stats);
    profile_free(&p);
}

/* A FRAMES record: varint table and first node, then (distance, address)
 * per node, the address relative to the previous one. */
static void put_frames(struct trace_builder *tb, uint32_t table, uint32_t first,
                       const uint32_t *parents, const uint64_t *addresses, size_t count)
{
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_FRAMES);
    sprof_encoder_varint(&tb->enc, table);
    sprof_encoder_varint(&tb->enc, first);
    uint64_t previous = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t id = first + (uint32_t)i;
        sprof_encoder_varint(&tb->enc, (uint64_t)(parents[i] ? id - parents[i] : 0) << 1);
        sprof_encoder_varint(&tb->enc, sprof_zigzag((int64_t)(addresses[i] - previous)));
        previous = addresses[i];
    }
    CHECK(sprof_encoder_end_record(&tb->enc));
    tb->record_count++;
}

static void test_frame_tables(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 500, SPROF_PROCESS_ROOT);
    uint64_t main_at = tb_address(&tb, "main");
    uint64_t work_at = tb_address(&tb, "work");
    uint64_t other_at = tb_address(&tb, "other");
    /* Threads 10 and 11 share the path work;main in their own tables. */
    const uint32_t parents[] = {0, 1, 1};
    const uint64_t addresses[] = {main_at, work_at, other_at};
    put_frames(&tb, 1, 1, parents, addresses, 3);
    put_frames(&tb, 2, 1, parents, addresses, 2);
    /* Table 3 lost its first two nodes: node 3 hangs below one of them. */
    const uint32_t gap_parents[] = {2, 0};
    const uint64_t gap_addresses[] = {work_at, main_at};
    put_frames(&tb, 3, 3, gap_parents, gap_addresses, 2);

    sprof_encoder_begin_record(&tb.enc, SPROF_REC_NODE_SAMPLES);
    sprof_encoder_varint(&tb.enc, 1);
    sprof_encoder_varint(&tb.enc, 10);
    sprof_encoder_varint(&tb.enc, 1000);
    sprof_encoder_varint(&tb.enc, 2 << 1 | 1); /* node 2, more */
    sprof_encoder_varint(&tb.enc, 3 << 1);     /* 3 samples, 3000 ns */
    sprof_encoder_varint(&tb.enc, 1 << 1);     /* node 3, one sample */
    CHECK(sprof_encoder_end_record(&tb.enc));
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_NODE_SAMPLES);
    sprof_encoder_varint(&tb.enc, 2);
    sprof_encoder_varint(&tb.enc, 11);
    sprof_encoder_varint(&tb.enc, 1000);
    sprof_encoder_varint(&tb.enc, 2 << 1 | 1);
    sprof_encoder_varint(&tb.enc, 1 << 1 | 1); /* one sample of 7 ns */
    sprof_encoder_varint(&tb.enc, 7);
    CHECK(sprof_encoder_end_record(&tb.enc));
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_NODE_SAMPLES);
    sprof_encoder_varint(&tb.enc, 3);
    sprof_encoder_varint(&tb.enc, 12);
    sprof_encoder_varint(&tb.enc, 1000);
    sprof_encoder_varint(&tb.enc, 3 << 1 | 1); /* node 3: undefined */
    sprof_encoder_varint(&tb.enc, 5 << 1);
    sprof_encoder_varint(&tb.enc, 1 << 1);     /* node 4: main */
    CHECK(sprof_encoder_end_record(&tb.enc));
    tb.record_count += 3;

    struct profile p;
    profile_init(&p);
    char path[64], error[256], warning[256];
    unit_write_temp(path, tb.enc.data, tb.enc.size);
    CHECK(profile_load_file(&p, path, error, sizeof error, warning, sizeof warning) > 0);
    tb_free(&tb);
    CHECK_CONTAINS(warning, "5 samples refer to stacks the trace does not define");
    CHECK_EQ(p.total_samples, 6);
    CHECK_EQ(p.total_weight_ns, 3000 + 1000 + 7 + 1000);
    /* One logical stack for work;main, though two tables (threads) defined
     * it: work;main, other;main, main. */
    CHECK_EQ(p.stack_count, 3);
    CHECK_EQ(p.stacks[0].samples, 4);
    CHECK_EQ(p.stacks[0].weight_ns, 3007);
    CHECK_EQ(p.thread_count, 3);
    for (size_t i = 0; i < p.thread_count; i++)
        CHECK_EQ(p.threads[i].samples, p.threads[i].tid == 10 ? 4 : 1);

    size_t count;
    struct function_stats *stats = compute_function_stats(&p, SORT_CUMULATIVE, &count);
    check_invariants(&p, stats, count);
    CHECK_EQ(count, 3);
    CHECK_EQ(stats_named(&p, stats, count, "work")->self_weight_ns, 3007);
    CHECK_EQ(stats_named(&p, stats, count, "other")->self_samples, 1);
    CHECK_EQ(stats_named(&p, stats, count, "main")->self_samples, 1);
    CHECK_EQ(stats_named(&p, stats, count, "main")->cumulative_samples, 6);
    free(stats);
    profile_free(&p);
}

/* A stack whose outermost frame is in no module (code a JIT wrote, an
 * unwinder's guess) is cut there: under the truncation mark, its time
 * given to no caller. A trace with no modules at all has no such test. */
static void test_root_outside_modules(void)
{
    for (int with_module = 0; with_module < 2; with_module++) {
        struct trace_builder tb;
        tb_init(&tb, 1, 800, SPROF_PROCESS_ROOT);
        uint64_t main_at = tb_address(&tb, "main");
        uint64_t work_at = tb_address(&tb, "work");
        uint64_t jit_at = tb_address(&tb, "0x5000");
        if (with_module)
            tb_module(&tb, 2, "build/prog", 0, main_at, work_at + 1);
        const uint32_t parents[] = {0, 1, 0};
        const uint64_t addresses[] = {main_at, work_at, jit_at};
        put_frames(&tb, 1, 1, parents, addresses, 3);
        sprof_encoder_begin_record(&tb.enc, SPROF_REC_NODE_SAMPLES);
        sprof_encoder_varint(&tb.enc, 1);
        sprof_encoder_varint(&tb.enc, 800);
        sprof_encoder_varint(&tb.enc, 1000);
        sprof_encoder_varint(&tb.enc, 2 << 1 | 1); /* node 2 (work;main): 3 samples */
        sprof_encoder_varint(&tb.enc, 3 << 1);
        sprof_encoder_varint(&tb.enc, 1 << 1 | 1); /* node 3 (0x5000 alone): 2 */
        sprof_encoder_varint(&tb.enc, 2 << 1);
        CHECK(sprof_encoder_end_record(&tb.enc));
        tb.record_count++;
        tb_finish(&tb, 5, 5000);

        struct profile p;
        profile_init(&p);
        load_built(&p, &tb);
        tb_free(&tb);
        CHECK_EQ(p.total_samples, 5);
        size_t count;
        struct function_stats *stats = compute_function_stats(&p, SORT_CUMULATIVE, &count);
        check_invariants(&p, stats, count);
        CHECK_EQ(stats_named(&p, stats, count, "main")->cumulative_samples, 3);
        CHECK_EQ(stats_named(&p, stats, count, "0x5000")->self_samples, 2);
        if (with_module)
            CHECK_EQ(stats_named(&p, stats, count, "[truncated stack]")->cumulative_samples, 2);
        else
            CHECK_EQ(functions_named(&p, "[truncated stack]"), 0);
        free(stats);
        profile_free(&p);
    }
}

/* A function of this program, for test_placeholder_named. */
__attribute__((noinline)) int placeholder_target(int x);
__attribute__((noinline)) int placeholder_target(int x)
{
    return x * 3 + 1;
}

static int main_program_bias(struct dl_phdr_info *info, size_t size, void *bias)
{
    (void)size;
    *(uint64_t *)bias = info->dlpi_addr;
    return 1; /* the first object listed is the program */
}

/* An address the exit named by its module and offset only (no symbol
 * there, as for libc's start_thread without libc's debug file) is named by
 * the analyzer where it finds a symbol: here this program's own symbol
 * table. Otherwise one function shows under two names where a run's
 * processes were named apart (a child ended by _exit is named by the
 * analyzer, its parent at exit). */
static void test_placeholder_named(void)
{
    char exe[4096];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(length > 0);
    exe[length] = '\0';
    elf_version(EV_CURRENT);
    int fd = open(exe, O_RDONLY);
    CHECK(fd >= 0);
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    const void *id = NULL;
    ssize_t id_size = elf ? dwelf_elf_gnu_build_id(elf, &id) : -1;
    CHECK(id_size > 0 && id_size <= SPROF_BUILD_ID_MAX);
    uint8_t build_id[SPROF_BUILD_ID_MAX];
    memcpy(build_id, id, (size_t)id_size);
    elf_end(elf);
    close(fd);
    uint64_t bias = 0;
    dl_iterate_phdr(main_program_bias, &bias);
    uint64_t address = (uint64_t)(uintptr_t)&placeholder_target + 1;

    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_module_identified(&tb, 5, exe, bias, address - 0x1000, address + 0x1000, build_id,
                         (uint32_t)id_size);
    uint32_t placeholder = tb_string(&tb, "test_trace_load+0x1234");
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_SYMBOL);
    sprof_encoder_u64(&tb.enc, address);
    sprof_encoder_u32(&tb.enc, 5);
    sprof_encoder_u16(&tb.enc, 1);
    sprof_encoder_u16(&tb.enc, SPROF_SYMBOL_UNWIND_TABLE);
    for (int field = 0; field < 5; field++)
        sprof_encoder_u32(&tb.enc, field == 0 ? placeholder : 0);
    CHECK(sprof_encoder_end_record(&tb.enc));
    tb.record_count++;
    char frames[64];
    snprintf(frames, sizeof frames, "0x%" PRIx64 ";main", address);
    tb_stack(&tb, 1, 0, frames);
    tb_samples(&tb, 100, 1, 4, 40);
    tb_finish(&tb, 4, 40);

    struct profile p;
    profile_init(&p);
    load_built(&p, &tb);
    tb_free(&tb);
    CHECK_EQ(p.stack_count, 1);
    CHECK_STR(function_name(&p, p.frames[p.stacks[0].first_frame]), "placeholder_target");
    CHECK_EQ(functions_named(&p, "test_trace_load+0x1234"), 0);
    profile_free(&p);
}

static void test_folded_stacks(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 600, SPROF_PROCESS_ROOT);
    tb_stack(&tb, 1, 0, "work@w.c:5;main");
    tb_stack(&tb, 2, 0, "other;main");
    tb_stack(&tb, 3, 0, "work@w.c:05;main"); /* another address in work */
    tb_samples(&tb, 600, 1, 3, 3000);
    tb_samples(&tb, 601, 1, 4, 4000); /* another thread: one line still */
    tb_samples(&tb, 600, 2, 2, 2000);
    tb_samples(&tb, 600, 3, 5, 5000); /* the same functions: the same line */
    tb_finish(&tb, 14, 14000);
    struct profile p;
    profile_init(&p);
    load_built(&p, &tb);
    tb_free(&tb);
    /* A name holding the separator and a newline. */
    p.functions[p.frames[p.stacks[1].first_frame]].name =
        sprof_string_table_intern(&p.strings, "odd;name\n", 9);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    CHECK(out != NULL);
    print_folded(out, &p);
    fclose(out);
    CHECK_EQ(p.stack_count, 3);
    CHECK_STR(text, "main;work 12\nmain;odd:name? 2\n");
    free(text);
    profile_free(&p);
}

/* Callgrind's costs: a function's self plus its calls' costs is its
 * cumulative figure, once per sample, through a mutual recursion too. */
static void test_callgrind_costs(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 700, SPROF_PROCESS_ROOT);
    tb_stack(&tb, 1, 0, "b;a;b;main");   /* the leaf's function deeper too */
    tb_stack(&tb, 2, 0, "c;b;a;b;main"); /* b's outermost frame calls a */
    tb_stack(&tb, 3, 0, "a;main");
    tb_samples(&tb, 700, 1, 2, 2000);
    tb_samples(&tb, 700, 2, 3, 3000);
    tb_samples(&tb, 700, 3, 1, 1000);
    tb_finish(&tb, 6, 6000);
    struct profile p;
    profile_init(&p);
    load_built(&p, &tb);
    tb_free(&tb);
    /* A name with a newline must not start a line of its own. */
    p.functions[function_named(&p, "c")].name = sprof_string_table_intern(&p.strings, "c\nx", 3);
    char *text = NULL, error[256] = "";
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    CHECK(out != NULL);
    CHECK(print_callgrind(out, &p, error, sizeof error));
    fclose(out);
    /* By hand: b self 2, b -> a 3 (its outermost frame in stack 2), so 5;
     * a self 1, a -> b 2 + 3, so 6; main -> b 5, main -> a 1, so 6; c 3. */
    const char *expected =
        "# callgrind format\nversion: 1\ncreator: sprof-analyze\npid: 700\n"
        "cmd: synthetic -x\npositions: line\nevent: Samples : Samples\n"
        "event: CPU_ns : CPU time (nanoseconds)\nevents: Samples CPU_ns\nsummary: 6 6000\n"
        "\nob=(1) ???\nfl=(1) ???\nfn=(1) b\n0 2 2000\n"
        "cob=(1)\ncfi=(1)\ncfn=(2) a\ncalls=0 0\n0 3 3000\n"
        "\nob=(1)\nfl=(1)\nfn=(2)\n0 1 1000\n"
        "cob=(1)\ncfi=(1)\ncfn=(1)\ncalls=0 0\n0 5 5000\n"
        "\nob=(1)\nfl=(1)\nfn=(3) main\n"
        "cob=(1)\ncfi=(1)\ncfn=(1)\ncalls=0 0\n0 5 5000\n"
        "cob=(1)\ncfi=(1)\ncfn=(2)\ncalls=0 0\n0 1 1000\n"
        "\nob=(1)\nfl=(1)\nfn=(4) c?x\n0 3 3000\n";
    CHECK_STR(text, expected);
    free(text);
    profile_free(&p);
}

static void test_run_identity(void)
{
    struct trace_builder tb;
    char root[64], child[64];
    tb_init(&tb, 0x1122334455667788ull, 100, SPROF_PROCESS_ROOT | SPROF_PROCESS_KERNEL_SAMPLED);
    tb_write(&tb, root);
    tb_free(&tb);
    tb_init(&tb, 0x1122334455667788ull, 101, SPROF_PROCESS_KERNEL_SAMPLED);
    tb_write(&tb, child);
    tb_free(&tb);

    uint64_t run_id = 0;
    bool is_root = false;
    uint32_t pid = 0;
    CHECK(trace_run_identity(root, &run_id, &is_root, &pid));
    CHECK_EQ(run_id, 0x1122334455667788ull);
    CHECK(is_root);
    CHECK_EQ(pid, 100);
    run_id = 0;
    CHECK(trace_run_identity(child, &run_id, &is_root, &pid));
    CHECK_EQ(run_id, 0x1122334455667788ull);
    CHECK(!is_root);
    CHECK_EQ(pid, 101);

    char path[64];
    unit_write_temp(path, "nope", 4);
    CHECK(!trace_run_identity(path, &run_id, &is_root, &pid));
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_process_summary_threads),
        UNIT_CASE(test_bare_addresses),
        UNIT_CASE(test_functions_shared_by_addresses),
        UNIT_CASE(test_cut_mid_record),
        UNIT_CASE(test_corrupt_record_stops_reading),
        UNIT_CASE(test_unknown_record_skipped),
        UNIT_CASE(test_no_usable_record),
        UNIT_CASE(test_two_files_merge),
        UNIT_CASE(test_frame_tables),
        UNIT_CASE(test_root_outside_modules),
        UNIT_CASE(test_placeholder_named),
        UNIT_CASE(test_folded_stacks),
        UNIT_CASE(test_callgrind_costs),
        UNIT_CASE(test_run_identity),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
