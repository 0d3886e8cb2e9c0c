/* Writes the synthetic seeds of corpus/ (make-corpus.sh runs it): small
 * traces that reach what real runs of the e2e programs do not, such as
 * mangled and inlined names, hostile names, a child's trace with a longer
 * header, records of unknown types, and bare addresses in a real library
 * that the analyzer must name itself.
 *
 * Usage: fuzz_seeds DIR */
#include <errno.h>

#include "sprof/trace_format.h"
#include "unit.h"

static const char *out_dir;

static void save(struct trace_builder *tb, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *file = fopen(path, "wb");
    if (!file || fwrite(tb->enc.data, 1, tb->enc.size, file) != tb->enc.size || fclose(file)) {
        fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    printf("%s (%zu bytes)\n", path, tb->enc.size);
    tb_free(tb);
}

static void end_record(struct trace_builder *tb)
{
    if (!sprof_encoder_end_record(&tb->enc))
        exit(1);
    tb->record_count++;
}

static void cxx_inlined(void)
{
    struct trace_builder tb;
    tb_init(&tb, 11, 300, SPROF_PROCESS_ROOT | SPROF_PROCESS_KERNEL_SAMPLED);
    tb_stack(&tb, 1, 0,
             "_ZN3foo3barEv@foo.h:10/_ZN3foo3bazEi@foo.cc:20;"
             "_ZNSt6vectorIiSaIiEE9push_backERKi@vector:100;main@main.cc:5");
    tb_stack(&tb, 2, SPROF_STACK_TRUNCATED, "_Z4leafv;_Z4leafv;_Z4leafv");
    tb_stack(&tb, 3, 0, "0x1234");
    tb_samples(&tb, 300, 1, 7, 7000000);
    tb_samples(&tb, 301, 2, 3, 3000000);
    tb_samples(&tb, 301, 3, 1, 1000000);
    tb_samples(&tb, 301, 99, 4, 4000000); /* a stack never defined */
    tb_thread(&tb, 300, "main", 8000000);
    tb_thread(&tb, 301, "\x1b[31mworker,\"\n", 6000000);
    tb_notice(&tb, SPROF_NOTICE_KERNEL_EXCLUDED, "system calls were not sampled");
    tb_notice(&tb, SPROF_NOTICE_INFO, "\x1b]0;title\x07\r\n");
    sprof_encoder_begin_record(&tb.enc, 4000); /* a later version's record */
    sprof_encoder_u64(&tb.enc, 0xfeedface);
    end_record(&tb);
    tb_finish(&tb, 15, 15000000);
    save(&tb, "synthetic-cxx-inlined.bin");
}

static void child_killed(void)
{
    /* A child's trace (not the run's root) with a 40-byte header, cut off
     * by a kill: no SUMMARY, no END. */
    struct trace_builder tb;
    memset(&tb, 0, sizeof tb);
    sprof_encoder_init(&tb.enc);
    sprof_encoder_bytes(&tb.enc, SPROF_TRACE_MAGIC, SPROF_TRACE_MAGIC_SIZE);
    sprof_encoder_u32(&tb.enc, SPROF_TRACE_VERSION);
    sprof_encoder_u32(&tb.enc, 40);
    sprof_encoder_u64(&tb.enc, 12);
    sprof_encoder_u32(&tb.enc, 401);
    sprof_encoder_u32(&tb.enc, 0);
    sprof_encoder_u64(&tb.enc, 0);
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_PROCESS);
    sprof_encoder_u32(&tb.enc, 401);
    sprof_encoder_u32(&tb.enc, 400);
    sprof_encoder_u64(&tb.enc, 1700000000u);
    sprof_encoder_u32(&tb.enc, 999);
    sprof_encoder_u32(&tb.enc, SPROF_TIMER_PERF_TASK_CLOCK);
    sprof_encoder_u64(&tb.enc, 1001001);
    sprof_encoder_u32(&tb.enc, 256);
    sprof_encoder_u32(&tb.enc, 0);
    sprof_encoder_string(&tb.enc, "/bin/child");
    sprof_encoder_u32(&tb.enc, 8);
    sprof_encoder_bytes(&tb.enc, "child\0-v", 8);
    sprof_encoder_string(&tb.enc, "SPROF_FREQ: not a number, 999 used");
    end_record(&tb);
    tb.pid = 401;
    tb_stack(&tb, 5, 0, "spin@spin.c:3;main@spin.c:9");
    tb_samples(&tb, 401, 5, 100, 100000000);
    save(&tb, "synthetic-child-killed.bin");
}

static void unnamed_library(void)
{
    /* Bare addresses inside a library that is on every Debian machine:
     * the analyzer names them itself with libdw. */
    struct trace_builder tb;
    tb_init(&tb, 13, 500, SPROF_PROCESS_ROOT);
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_MODULE);
    sprof_encoder_u32(&tb.enc, 0);
    sprof_encoder_u32(&tb.enc, 0); /* no build-id: any file at the path */
    sprof_encoder_u64(&tb.enc, 0x7f0000000000);
    sprof_encoder_u64(&tb.enc, 0x7f0000000000);
    sprof_encoder_u64(&tb.enc, 0x7f0000200000);
    sprof_encoder_string(&tb.enc, "/lib/x86_64-linux-gnu/libc.so.6");
    end_record(&tb);
    tb_module(&tb, 1, "[vdso]", 0x7ffff7fc1000, 0x7ffff7fc1000, 0x7ffff7fc3000);
    tb_stack(&tb, 1, 0, "0x7f0000030000;0x7f0000027000;0x7f00000271d0;0x7ffff7fc1100");
    tb_stack(&tb, 2, 0, "0x7f0000099999;0x7f0000027000");
    tb_samples(&tb, 500, 1, 2, 2000000);
    tb_samples(&tb, 500, 2, 1, 1000000);
    tb_finish(&tb, 3, 3000000);
    save(&tb, "synthetic-unnamed-libc.bin");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    cxx_inlined();
    child_killed();
    unnamed_library();
    return 0;
}
