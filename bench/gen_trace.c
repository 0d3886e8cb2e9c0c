/* gen_trace: writes a synthetic sprof trace with many samples, for timing
 * the analyzer (bench/bench.py). It uses the project's own encoder
 * (common/trace_codec.h) and format (include/sprof/trace_format.h).
 *
 *   gen_trace OUT SAMPLES [THREADS [STACKS [FUNCTIONS [SEED]]]]
 *
 * The trace looks like a long run of a large program at 999 Hz:
 * - FUNCTIONS functions (default 5000) in one module, each named by a SYMBOL
 *   (with an inlined frame for one address in five), so the analyzer needs
 *   no binary on disk;
 * - a pool of STACKS distinct stacks (default 50000), 6 to 60 frames deep,
 *   grown as paths down a random call tree, so they share their callers as
 *   real stacks do; each thread keeps its own frame table, as the preload
 *   does, and writes a stack's new nodes (a FRAMES record per batch) the
 *   first time it uses the stack;
 * - samples drawn from the pool with Zipf-like popularity (a few hot
 *   stacks, a long tail), written as the preload writes them: one
 *   NODE_SAMPLES record per thread per 100 samples (100 ms at 999 Hz), one
 *   entry per distinct stack in the batch, each sample weighing the period;
 * - THREAD, SUMMARY and END records at the end.
 * It prints one line: samples, entries, frame nodes, distinct stacks,
 * symbols, mean depth. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "sprof/trace_format.h"
#include "hash_map.h"
#include "trace_codec.h"
#include "varint.h"

#define MODULE_START 0x400000ull
#define FUNCTION_SIZE 0x400ull
#define MIN_DEPTH 6
#define MAX_DEPTH 60
#define BATCH_SAMPLES 100
#define PERIOD_NS 1001001ull
#define TABLE_NODES (1u << 20)

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint64_t next_random(void)
{
    /* xorshift64*: fast and good enough for shapes. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint32_t random_below(uint32_t n)
{
    return (uint32_t)(next_random() % n);
}

static double random_unit(void)
{
    return (double)(next_random() >> 11) / 9007199254740992.0;
}

struct stack {
    uint32_t depth;
    uint64_t *pcs; /* leaf first */
};

static int fd_out = -1;

static void flush(struct sprof_encoder *enc, int force)
{
    if (enc->failed) {
        fprintf(stderr, "gen_trace: out of memory\n");
        exit(1);
    }
    if (force || enc->size > (4u << 20)) {
        if (sprof_encoder_flush(enc, fd_out) != 0) {
            perror("gen_trace: write");
            exit(1);
        }
    }
}

/* The call site in function caller that calls callee: a fixed offset. */
static uint64_t call_site(uint32_t caller, uint32_t callee)
{
    uint64_t offset = 0x10 + ((uint64_t)callee * 0x9e3779b1u % 48) * 0x10 + 4;
    return MODULE_START + caller * FUNCTION_SIZE + offset;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gen_trace OUT SAMPLES [THREADS [STACKS [FUNCTIONS [SEED]]]]\n");
        return 2;
    }
    uint64_t samples = strtoull(argv[2], NULL, 10);
    uint32_t threads = argc > 3 ? (uint32_t)atoi(argv[3]) : 8;
    uint32_t stack_count = argc > 4 ? (uint32_t)atoi(argv[4]) : 50000;
    uint32_t functions = argc > 5 ? (uint32_t)atoi(argv[5]) : 5000;
    if (argc > 6)
        rng_state ^= strtoull(argv[6], NULL, 10) * 0x9e3779b97f4a7c15ull;
    if (threads < 1 || stack_count < 1 || functions < 16) {
        fprintf(stderr, "gen_trace: bad arguments\n");
        return 2;
    }
    fd_out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_out < 0) {
        perror(argv[1]);
        return 1;
    }

    /* The call tree: each function calls a few others; lower-numbered
     * functions sit nearer the root, as main and its helpers do. */
    enum { CALLEES = 6 };
    uint32_t *callees = malloc(sizeof *callees * functions * CALLEES);
    for (uint32_t f = 0; f < functions; f++) {
        for (int c = 0; c < CALLEES; c++) {
            uint32_t span = functions - f - 1 < 400 ? functions - f - 1 : 400;
            callees[f * CALLEES + c] = span ? f + 1 + random_below(span) : random_below(functions);
        }
    }

    /* The stack pool: random paths from function 0 (main) downwards. */
    struct stack *pool = calloc(stack_count, sizeof *pool);
    uint64_t depth_sum = 0;
    for (uint32_t s = 0; s < stack_count; s++) {
        uint32_t depth = MIN_DEPTH + random_below(MAX_DEPTH - MIN_DEPTH + 1);
        uint32_t path[MAX_DEPTH];
        path[0] = 0;
        for (uint32_t d = 1; d < depth; d++) {
            /* Skewed choice: the first callees are called most. */
            uint32_t c = (uint32_t)(CALLEES * random_unit() * random_unit());
            path[d] = callees[path[d - 1] * CALLEES + c];
        }
        struct stack *st = &pool[s];
        st->depth = depth;
        st->pcs = malloc(sizeof(uint64_t) * depth);
        uint32_t leaf = path[depth - 1];
        st->pcs[0] = MODULE_START + leaf * FUNCTION_SIZE + 0x20 + random_below(64) * 4;
        for (uint32_t d = 1; d < depth; d++)
            st->pcs[d] = call_site(path[depth - 1 - d], path[depth - d]) - 1;
        depth_sum += depth;
    }

    /* Zipf-like popularity: weight 1/(rank+1)^1.1, as a cumulative table. */
    double *cdf = malloc(sizeof(double) * stack_count);
    double total = 0;
    for (uint32_t s = 0; s < stack_count; s++) {
        total += 1.0 / pow((double)s + 1.0, 1.1);
        cdf[s] = total;
    }

    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    sprof_encoder_file_header(&enc, 0x62656e6368ull, 4242);
    sprof_encoder_begin_record(&enc, SPROF_REC_PROCESS);
    sprof_encoder_u32(&enc, 4242);
    sprof_encoder_u32(&enc, 1);
    sprof_encoder_u64(&enc, 1700000000000000000ull);
    sprof_encoder_u32(&enc, 999);
    sprof_encoder_u32(&enc, SPROF_TIMER_PERF_TASK_CLOCK);
    sprof_encoder_u64(&enc, PERIOD_NS);
    sprof_encoder_u32(&enc, 256);
    sprof_encoder_u32(&enc, SPROF_PROCESS_KERNEL_SAMPLED | SPROF_PROCESS_ROOT);
    sprof_encoder_string(&enc, "/nonexistent/synthetic-program");
    const char cmdline[] = "synthetic-program\0--bench";
    sprof_encoder_u32(&enc, sizeof cmdline - 1);
    sprof_encoder_bytes(&enc, cmdline, sizeof cmdline - 1);
    sprof_encoder_string(&enc, "");
    sprof_encoder_end_record(&enc);
    sprof_encoder_begin_record(&enc, SPROF_REC_MODULE);
    sprof_encoder_u32(&enc, 0);
    sprof_encoder_u32(&enc, 0);
    sprof_encoder_u64(&enc, 0);
    sprof_encoder_u64(&enc, MODULE_START);
    sprof_encoder_u64(&enc, MODULE_START + functions * FUNCTION_SIZE);
    sprof_encoder_string(&enc, "/nonexistent/synthetic-program");
    sprof_encoder_end_record(&enc);

    /* Per thread, a frame table as the preload keeps one: the leaf node of
     * each pool stack it has used (0: not yet), and its nodes by
     * (parent, pc offset). */
    uint32_t *leaf_of = calloc((size_t)threads * stack_count, sizeof *leaf_of);
    struct sprof_map *node_of = calloc(threads, sizeof *node_of);
    uint32_t *node_count = calloc(threads, sizeof *node_count);
    uint32_t *table_of = calloc(threads, sizeof *table_of);
    uint32_t next_table = 1;
    for (uint32_t t = 0; t < threads; t++)
        table_of[t] = next_table++;
    for (uint32_t t = 0; t < threads; t++)
        sprof_map_init(&node_of[t]);
    uint32_t *batch_count = calloc(stack_count, sizeof *batch_count);
    uint32_t batch_stacks[BATCH_SAMPLES];
    uint32_t batch_leaves[BATCH_SAMPLES];
    uint64_t *thread_samples = calloc(threads, sizeof *thread_samples);
    uint64_t entries = 0, stack_records = 0, nodes_total = 0;
    uint8_t *used = calloc(stack_count, 1);
    uint64_t done = 0;
    for (uint64_t batch = 0; done < samples; batch++) {
        uint32_t thread = (uint32_t)(batch % threads);
        uint32_t in_batch = samples - done < BATCH_SAMPLES ? (uint32_t)(samples - done)
                                                            : BATCH_SAMPLES;
        uint32_t distinct = 0;
        for (uint32_t i = 0; i < in_batch; i++) {
            double u = random_unit() * total;
            uint32_t lo = 0, hi = stack_count - 1;
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (batch_count[lo]++ == 0)
                batch_stacks[distinct++] = lo;
        }
        /* A table that could fill during this batch is replaced first, as
         * the preload starts a new table when its 65536 nodes are used. */
        if (node_count[thread] + distinct * MAX_DEPTH > TABLE_NODES) {
            table_of[thread] = next_table++;
            node_count[thread] = 0;
            sprof_map_free(&node_of[thread]);
            sprof_map_init(&node_of[thread]);
            memset(&leaf_of[(size_t)thread * stack_count], 0, stack_count * sizeof *leaf_of);
        }
        /* New nodes of this batch's stacks: one FRAMES record. */
        uint32_t first_new = node_count[thread] + 1;
        struct sprof_encoder nodes;
        sprof_encoder_init(&nodes);
        uint64_t previous_pc = 0;
        for (uint32_t i = 0; i < distinct; i++) {
            uint32_t s = batch_stacks[i];
            uint32_t *leaf = &leaf_of[(size_t)thread * stack_count + s];
            if (!*leaf) {
                used[s] = 1;
                stack_records++;
                uint32_t parent = 0;
                for (uint32_t d = pool[s].depth; d-- > 0;) {
                    uint64_t pc = pool[s].pcs[d];
                    uint64_t key = (uint64_t)parent << 32 | (pc - MODULE_START);
                    uint32_t node;
                    if (!sprof_map_get(&node_of[thread], key, &node)) {
                        node = ++node_count[thread];
                        sprof_map_put(&node_of[thread], key, node);
                        sprof_encoder_varint(&nodes, (uint64_t)(parent ? node - parent : 0) << 1);
                        sprof_encoder_varint(&nodes, sprof_zigzag((int64_t)(pc - previous_pc)));
                        previous_pc = pc;
                        nodes_total++;
                    }
                    parent = node;
                }
                *leaf = parent;
            }
            batch_leaves[i] = *leaf;
        }
        if (nodes.size > 0) {
            sprof_encoder_begin_record(&enc, SPROF_REC_FRAMES);
            sprof_encoder_varint(&enc, table_of[thread]);
            sprof_encoder_varint(&enc, first_new);
            sprof_encoder_bytes(&enc, nodes.data, nodes.size);
            sprof_encoder_end_record(&enc);
        }
        sprof_encoder_free(&nodes);
        /* The samples, by ascending leaf, as the preload sorts them. */
        for (uint32_t i = 1; i < distinct; i++) {
            for (uint32_t j = i; j > 0 && batch_leaves[j - 1] > batch_leaves[j]; j--) {
                uint32_t leaf = batch_leaves[j], stack = batch_stacks[j];
                batch_leaves[j] = batch_leaves[j - 1];
                batch_stacks[j] = batch_stacks[j - 1];
                batch_leaves[j - 1] = leaf;
                batch_stacks[j - 1] = stack;
            }
        }
        sprof_encoder_begin_record(&enc, SPROF_REC_NODE_SAMPLES);
        sprof_encoder_varint(&enc, table_of[thread]);
        sprof_encoder_varint(&enc, 1000 + thread);
        sprof_encoder_varint(&enc, PERIOD_NS);
        uint32_t previous_leaf = 0;
        for (uint32_t i = 0; i < distinct;) {
            /* Pool stacks with the same frames share a leaf: one entry. */
            uint32_t count = 0, leaf = batch_leaves[i];
            for (; i < distinct && batch_leaves[i] == leaf; i++) {
                count += batch_count[batch_stacks[i]];
                batch_count[batch_stacks[i]] = 0;
            }
            bool more = count != 1;
            sprof_encoder_varint(&enc, (uint64_t)(leaf - previous_leaf) << 1 | more);
            if (more)
                sprof_encoder_varint(&enc, (uint64_t)count << 1);
            previous_leaf = leaf;
            entries++;
        }
        sprof_encoder_end_record(&enc);
        thread_samples[thread] += in_batch;
        done += in_batch;
        flush(&enc, 0);
    }

    for (uint32_t t = 0; t < threads; t++) {
        char name[24];
        snprintf(name, sizeof name, "worker-%u", t);
        sprof_encoder_begin_record(&enc, SPROF_REC_THREAD);
        sprof_encoder_u32(&enc, 1000 + t);
        sprof_encoder_u32(&enc, 0);
        sprof_encoder_u64(&enc, thread_samples[t] * PERIOD_NS + thread_samples[t] * 20000);
        sprof_encoder_u64(&enc, thread_samples[t]);
        sprof_encoder_u64(&enc, thread_samples[t] * PERIOD_NS);
        sprof_encoder_string(&enc, name);
        sprof_encoder_end_record(&enc);
    }
    sprof_encoder_begin_record(&enc, SPROF_REC_SUMMARY);
    uint64_t cpu = samples * PERIOD_NS + samples * 20000;
    sprof_encoder_u64(&enc, cpu / threads); /* wall */
    sprof_encoder_u64(&enc, cpu * 9 / 10);  /* user */
    sprof_encoder_u64(&enc, cpu / 10);      /* system */
    sprof_encoder_u64(&enc, 0);
    sprof_encoder_u64(&enc, 50000);         /* peak RSS, KiB */
    sprof_encoder_u64(&enc, samples);
    sprof_encoder_u64(&enc, samples * PERIOD_NS);
    sprof_encoder_u64(&enc, 0);
    sprof_encoder_u64(&enc, 0);
    sprof_encoder_u32(&enc, threads);
    sprof_encoder_u32(&enc, 0);
    sprof_encoder_end_record(&enc);
    flush(&enc, 1);

    /* Names: one STRING per function, a SYMBOL per address used. */
    for (uint32_t f = 0; f < functions; f++) {
        char name[64];
        snprintf(name, sizeof name, f == 0 ? "main" : "module_%u::function_%u", f % 37, f);
        sprof_encoder_begin_record(&enc, SPROF_REC_STRING);
        sprof_encoder_u32(&enc, 2 + f);
        sprof_encoder_bytes(&enc, name, strlen(name));
        sprof_encoder_end_record(&enc);
    }
    sprof_encoder_begin_record(&enc, SPROF_REC_STRING);
    sprof_encoder_u32(&enc, 1);
    sprof_encoder_bytes(&enc, "synthetic.c", 11);
    sprof_encoder_end_record(&enc);
    /* Every address of every used stack, once (a small open-addressing set). */
    size_t set_size = 1;
    while (set_size < 2 * (size_t)depth_sum) /* room for every address: never full */
        set_size <<= 1;
    uint64_t *set = calloc(set_size, sizeof *set);
    uint64_t symbols = 0;
    for (uint32_t s = 0; s < stack_count; s++) {
        if (!used[s])
            continue;
        for (uint32_t d = 0; d < pool[s].depth; d++) {
            uint64_t a = pool[s].pcs[d];
            size_t at = (size_t)((a * 0x9e3779b97f4a7c15ull) >> 20) & (set_size - 1);
            while (set[at] && set[at] != a)
                at = (at + 1) & (set_size - 1);
            if (set[at])
                continue;
            set[at] = a;
            symbols++;
            uint32_t f = (uint32_t)((a - MODULE_START) / FUNCTION_SIZE);
            int inlined = (a >> 4) % 5 == 0 && f + 1 < functions;
            sprof_encoder_begin_record(&enc, SPROF_REC_SYMBOL);
            sprof_encoder_u64(&enc, a);
            sprof_encoder_u32(&enc, 0);
            sprof_encoder_u16(&enc, (uint16_t)(inlined ? 2 : 1));
            sprof_encoder_u16(&enc, SPROF_SYMBOL_DWARF);
            if (inlined) { /* an inlined helper, innermost first */
                uint32_t helper = functions - 1 - f % 200;
                sprof_encoder_u32(&enc, 2 + helper);
                sprof_encoder_u32(&enc, 1);
                sprof_encoder_u32(&enc, 10 + helper);
                sprof_encoder_u32(&enc, 1);
                sprof_encoder_u32(&enc, 5 + helper);
            }
            sprof_encoder_u32(&enc, 2 + f);
            sprof_encoder_u32(&enc, 1);
            sprof_encoder_u32(&enc, 100 + f * 3 + (uint32_t)(a % 7));
            sprof_encoder_u32(&enc, 1);
            sprof_encoder_u32(&enc, 100 + f * 3);
            sprof_encoder_end_record(&enc);
            flush(&enc, 0);
        }
    }
    sprof_encoder_begin_record(&enc, SPROF_REC_END);
    sprof_encoder_end_record(&enc);
    flush(&enc, 1);
    if (close(fd_out) != 0) {
        perror("gen_trace: close");
        return 1;
    }
    uint32_t distinct_used = 0;
    for (uint32_t s = 0; s < stack_count; s++)
        distinct_used += used[s];
    printf("%llu %llu %llu %u %llu %.1f\n", (unsigned long long)samples,
           (unsigned long long)entries, (unsigned long long)nodes_total, distinct_used,
           (unsigned long long)symbols, (double)depth_sum / stack_count);
    return 0;
}
