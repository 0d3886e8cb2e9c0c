/* compute_function_stats on synthetic traces whose figures are known by
 * construction. Weights are not a fixed multiple of samples, so a mix-up
 * of the two shows. */
#include "sprof/trace_format.h"
#include "unit_profile.h"
#include "varint.h"

/* Stats of a profile built from tb, sorted by key. */
struct loaded {
    struct profile profile;
    struct function_stats *stats;
    size_t count;
};

static void load(struct loaded *l, struct trace_builder *tb, enum sort_key key)
{
    profile_init(&l->profile);
    load_built(&l->profile, tb);
    tb_free(tb);
    l->stats = compute_function_stats(&l->profile, key, &l->count);
    CHECK(l->stats != NULL);
    check_invariants(&l->profile, l->stats, l->count);
}

static void unload(struct loaded *l)
{
    free(l->stats);
    profile_free(&l->profile);
}

/* Checks one function's row; a failure names the row and the caller's line. */
static void check_row_at(int line, const struct loaded *l, const char *name,
                         uint64_t self_samples, uint64_t self_weight,
                         uint64_t cumulative_samples, uint64_t cumulative_weight)
{
    const struct function_stats *s = stats_named(&l->profile, l->stats, l->count, name);
    if (s->self_samples == self_samples && s->self_weight_ns == self_weight &&
        s->cumulative_samples == cumulative_samples &&
        s->cumulative_weight_ns == cumulative_weight)
        return;
    fprintf(stderr,
            "%s:%d: row %s is self %llu/%llu cumulative %llu/%llu, want %llu/%llu %llu/%llu\n",
            __FILE__, line, name, (unsigned long long)s->self_samples,
            (unsigned long long)s->self_weight_ns, (unsigned long long)s->cumulative_samples,
            (unsigned long long)s->cumulative_weight_ns, (unsigned long long)self_samples,
            (unsigned long long)self_weight, (unsigned long long)cumulative_samples,
            (unsigned long long)cumulative_weight);
    exit(1);
}
#define CHECK_ROW(...) check_row_at(__LINE__, __VA_ARGS__)

static void test_self_and_cumulative(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, SPROF_PROCESS_ROOT);
    tb_stack(&tb, 1, 0, "c;b;a");
    tb_stack(&tb, 2, 0, "b;a");
    tb_stack(&tb, 3, 0, "d;a");
    tb_stack(&tb, 4, 0, "unused;a"); /* never sampled */
    tb_samples(&tb, 100, 1, 3, 310);
    tb_samples(&tb, 100, 2, 2, 205);
    tb_samples(&tb, 101, 3, 5, 520);
    tb_samples(&tb, 100, 1, 1, 100); /* a later batch of the same stack */
    tb_finish(&tb, 11, 1135);

    struct loaded l;
    load(&l, &tb, SORT_CUMULATIVE);
    CHECK_EQ(l.profile.total_samples, 11);
    CHECK_EQ(l.profile.total_weight_ns, 1135);
    /* "unused" exists as a function but has no row. */
    function_named(&l.profile, "unused");
    CHECK_EQ(l.count, 4);
    CHECK_ROW(&l, "a", 0, 0, 11, 1135);
    CHECK_ROW(&l, "b", 2, 205, 6, 615);
    CHECK_ROW(&l, "c", 4, 410, 4, 410);
    CHECK_ROW(&l, "d", 5, 520, 5, 520);

    /* The two batches of stack 1 add up in it. */
    CHECK_EQ(l.profile.stack_count, 4);
    CHECK_EQ(l.profile.stacks[0].samples, 4);
    CHECK_EQ(l.profile.stacks[0].weight_ns, 410);
    CHECK_EQ(l.profile.thread_count, 2);
    for (size_t i = 0; i < l.profile.thread_count; i++) {
        const struct thread_info *t = &l.profile.threads[i];
        CHECK(t->tid == 100 || t->tid == 101);
        CHECK_EQ(t->samples, t->tid == 100 ? 6 : 5);
        CHECK_EQ(t->weight_ns, t->tid == 100 ? 615 : 520);
    }
    unload(&l);
}

static void test_recursion_counts_once(void)
{
    /* f calls itself 30 times under main, and a and b call each other. */
    char frames[512] = "";
    for (int i = 0; i < 30; i++)
        strcat(frames, "f;");
    strcat(frames, "main");
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, frames);
    tb_stack(&tb, 2, 0, "a;b;a;b;a;main");
    tb_samples(&tb, 100, 1, 4, 400);
    tb_samples(&tb, 100, 2, 3, 333);
    tb_finish(&tb, 7, 733);

    struct loaded l;
    load(&l, &tb, SORT_CUMULATIVE);
    CHECK_EQ(l.profile.stacks[0].depth, 31);
    CHECK_ROW(&l, "f", 4, 400, 4, 400);
    CHECK_ROW(&l, "a", 3, 333, 3, 333);
    CHECK_ROW(&l, "b", 0, 0, 3, 333);
    CHECK_ROW(&l, "main", 0, 0, 7, 733);
    unload(&l);
}

static void test_function_in_two_stacks(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "shared;x;main");
    tb_stack(&tb, 2, 0, "y;shared;main");
    tb_stack(&tb, 3, 0, "z;main");
    tb_samples(&tb, 100, 1, 7, 71);
    tb_samples(&tb, 100, 2, 11, 113);
    tb_samples(&tb, 200, 2, 1, 1); /* the same stack on another thread */
    tb_samples(&tb, 100, 3, 13, 131);
    tb_finish(&tb, 32, 316);

    struct loaded l;
    load(&l, &tb, SORT_CUMULATIVE);
    CHECK_ROW(&l, "shared", 7, 71, 19, 185);
    CHECK_ROW(&l, "x", 0, 0, 7, 71);
    CHECK_ROW(&l, "y", 12, 114, 12, 114);
    CHECK_ROW(&l, "z", 13, 131, 13, 131);
    CHECK_ROW(&l, "main", 0, 0, 32, 316);
    unload(&l);
}

static void test_inlined_frames(void)
{
    /* One address holding inner, inlined into outer, called from main. */
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "inner@util.h:12/outer@main.c:30;main@main.c:50");
    tb_stack(&tb, 2, 0, "outer@main.c:30;main@main.c:50");
    tb_samples(&tb, 100, 1, 5, 500);
    tb_samples(&tb, 100, 2, 2, 200);
    tb_finish(&tb, 7, 700);

    struct loaded l;
    load(&l, &tb, SORT_CUMULATIVE);
    /* Two addresses in the stack, three functions: inner is the leaf. */
    const struct logical_stack *s = &l.profile.stacks[0];
    CHECK_EQ(s->depth, 3);
    const uint32_t *frames = l.profile.frames + s->first_frame;
    CHECK_EQ(frames[0], function_named(&l.profile, "inner"));
    CHECK_EQ(frames[1], function_named(&l.profile, "outer"));
    CHECK_EQ(frames[2], function_named(&l.profile, "main"));
    CHECK_ROW(&l, "inner", 5, 500, 5, 500);
    CHECK_ROW(&l, "outer", 2, 200, 7, 700);
    CHECK_ROW(&l, "main", 0, 0, 7, 700);

    /* The declaration is the location; the outer frame at the second
     * address is the same function as the one inlined into. */
    CHECK_STR(sprof_string_table_get(&l.profile.strings,
                                     l.profile.functions[function_named(&l.profile, "inner")]
                                         .location),
              "util.h:12");
    CHECK_EQ(l.profile.function_count, 3);
    unload(&l);
}

/* Figures chosen so every sort key gives a different order:
 *   function  self s/w    cumulative s/w
 *   root      0 / 0       44 / 2450
 *   mid       1 / 50      21 / 2050
 *   leaf1     10 / 1000   10 / 1000   ties with leaf2 on everything
 *   leaf2     10 / 1000   10 / 1000
 *   gamma     3 / 300     3 / 300     ties with beta on cumulative weight
 *   beta      0 / 0       3 / 300
 *   zeta      20 / 100    20 / 100    most samples, little weight */
static void build_sort_trace(struct trace_builder *tb)
{
    tb_init(tb, 1, 100, 0);
    tb_stack(tb, 1, 0, "leaf2;mid;root"); /* leaf2 is made first: ties go by name */
    tb_stack(tb, 2, 0, "leaf1;mid;root");
    tb_stack(tb, 3, 0, "mid;root");
    tb_stack(tb, 4, 0, "zeta;root");
    tb_stack(tb, 5, 0, "gamma;beta;root");
    tb_samples(tb, 100, 1, 10, 1000);
    tb_samples(tb, 100, 2, 10, 1000);
    tb_samples(tb, 100, 3, 1, 50);
    tb_samples(tb, 100, 4, 20, 100);
    tb_samples(tb, 100, 5, 3, 300);
    tb_finish(tb, 44, 2450);
}

static void test_sort_orders(void)
{
    static const struct {
        enum sort_key key;
        const char *order;
    } cases[] = {
        /* Cumulative weight, then nearness to the root (beta, the caller,
         * before gamma), then self weight, then name. */
        {SORT_CUMULATIVE, "root,mid,leaf1,leaf2,beta,gamma,zeta"},
        /* Self weight, then cumulative weight (root before beta). */
        {SORT_SELF, "leaf1,leaf2,gamma,zeta,mid,root,beta"},
        /* Self samples, then cumulative samples. */
        {SORT_SAMPLES, "zeta,leaf1,leaf2,gamma,mid,root,beta"},
        {SORT_NAME, "beta,gamma,leaf1,leaf2,mid,root,zeta"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct trace_builder tb;
        build_sort_trace(&tb);
        struct loaded l;
        load(&l, &tb, cases[i].key);
        CHECK_EQ(l.count, 7);
        CHECK_ROW(&l, "root", 0, 0, 44, 2450);
        CHECK_ROW(&l, "mid", 1, 50, 21, 2050);
        CHECK_ROW(&l, "beta", 0, 0, 3, 300);
        check_order(&l.profile, l.stats, l.count, cases[i].order);
        unload(&l);
    }
}

static void test_sort_ties_callers_first(void)
{
    /* One stack, so every function has 100% cumulative time: a cumulative
     * sort lists them from the root down, the leaf (all the self time) last. */
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "zleaf;amid;mroot");
    tb_samples(&tb, 100, 1, 10, 100);
    tb_finish(&tb, 10, 100);
    struct loaded l;
    load(&l, &tb, SORT_CUMULATIVE);
    CHECK_EQ(l.count, 3);
    check_order(&l.profile, l.stats, l.count, "mroot,amid,zleaf");
    unload(&l);
}

static void test_sort_same_name(void)
{
    /* Two functions called "dup" (declared in different files) tie on
     * everything; the one met first comes first, whatever the key. */
    static const enum sort_key keys[] = {SORT_CUMULATIVE, SORT_SELF, SORT_SAMPLES, SORT_NAME};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        struct trace_builder tb;
        tb_init(&tb, 1, 100, 0);
        tb_stack(&tb, 1, 0, "dup@b.c:1;main");
        tb_stack(&tb, 2, 0, "dup@a.c:1;main");
        tb_samples(&tb, 100, 2, 5, 50);
        tb_samples(&tb, 100, 1, 5, 50);
        tb_finish(&tb, 10, 100);
        struct loaded l;
        load(&l, &tb, keys[i]);
        CHECK_EQ(functions_named(&l.profile, "dup"), 2);
        CHECK_EQ(l.count, 3);
        /* main comes first only by cumulative weight. */
        size_t first = keys[i] == SORT_CUMULATIVE ? 1 : 0;
        check_order(&l.profile, l.stats, l.count, first ? "main,dup,dup" : "dup,dup,main");
        CHECK(l.stats[first].function < l.stats[first + 1].function);
        const struct function *fn = &l.profile.functions[l.stats[first].function];
        CHECK_STR(sprof_string_table_get(&l.profile.strings, fn->location), "b.c:1");
        unload(&l);
    }
}

static void test_unknown_stack_ignored(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "work;main");
    tb_samples(&tb, 100, 1, 2, 20);
    tb_samples(&tb, 100, 77, 50, 5000); /* never defined */
    tb_finish(&tb, 52, 5020);

    struct loaded l;
    expected_load_warning = "50 samples refer to stacks the trace does not define";
    load(&l, &tb, SORT_CUMULATIVE);
    expected_load_warning = NULL;
    CHECK_EQ(l.profile.total_samples, 2);
    CHECK_EQ(l.profile.total_weight_ns, 20);
    CHECK_EQ(l.profile.stack_count, 1);
    CHECK_EQ(l.profile.stacks[0].samples, 2);
    CHECK_EQ(l.count, 2);
    CHECK_ROW(&l, "work", 2, 20, 2, 20);
    CHECK_ROW(&l, "main", 0, 0, 2, 20);
    unload(&l);
}

static void test_truncated_stack(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, SPROF_STACK_TRUNCATED, "deep;deeper");
    tb_stack(&tb, 2, 0, "deep;main");
    tb_samples(&tb, 100, 1, 6, 66);
    tb_samples(&tb, 100, 2, 1, 11);
    tb_finish(&tb, 7, 77);

    struct loaded l;
    load(&l, &tb, SORT_CUMULATIVE);
    const struct logical_stack *s = &l.profile.stacks[0];
    CHECK(s->truncated);
    CHECK(!l.profile.stacks[1].truncated);
    CHECK_EQ(s->depth, 3);
    /* The marker sits at the root end, where the missing frames were. */
    uint32_t marker = function_named(&l.profile, "[truncated stack]");
    CHECK_EQ(l.profile.frames[s->first_frame + 2], marker);
    CHECK_EQ(l.profile.stacks[1].depth, 2);
    CHECK_ROW(&l, "[truncated stack]", 0, 0, 6, 66);
    CHECK_ROW(&l, "deep", 7, 77, 7, 77);
    CHECK_ROW(&l, "deeper", 0, 0, 6, 66);
    CHECK_ROW(&l, "main", 0, 0, 1, 11);
    unload(&l);
}

/* A frame table being built, as the preload keeps one: nodes by local id. */
#define BUILT_NODES_MAX 2048
struct built_table {
    uint32_t id;
    uint32_t parents[BUILT_NODES_MAX];
    uint64_t addresses[BUILT_NODES_MAX];
    bool truncated[BUILT_NODES_MAX];
    uint32_t count; /* local ids in use, 0 included */
};

/* Adds the stack "leaf;...;root" to t: its nodes that t lacks go out as a
 * FRAMES record, numbered from first (t->count, or more to leave a gap).
 * Returns the leaf's node. */
static uint32_t put_stack(struct trace_builder *tb, struct built_table *t, uint32_t first,
                          const char *frames, bool truncated)
{
    char *tokens[BUILT_NODES_MAX];
    size_t depth = 0;
    char *copy = strdup(frames);
    for (char *token = strtok(copy, ";"); token; token = strtok(NULL, ";"))
        tokens[depth++] = token;
    uint32_t node = 0;
    size_t made = 0;
    uint8_t nodes[BUILT_NODES_MAX * 2 * SPROF_VARINT_MAX];
    size_t size = 0;
    uint64_t previous = 0;
    for (size_t d = depth; d-- > 0;) {
        uint64_t address = tb_address(tb, tokens[d]);
        uint32_t found = 0;
        for (uint32_t id = 1; id < t->count && !found; id++) {
            if (t->parents[id] == node && t->addresses[id] == address &&
                t->truncated[id] == (node == 0 && truncated))
                found = id;
        }
        if (!found) {
            found = made++ ? t->count : (t->count = first);
            CHECK(found < BUILT_NODES_MAX);
            t->parents[found] = node;
            t->addresses[found] = address;
            t->truncated[found] = node == 0 && truncated;
            t->count++;
            size += sprof_varint_put(nodes + size, (uint64_t)(node ? found - node : 0) << 1 |
                                                       t->truncated[found]);
            size += sprof_varint_put(nodes + size, sprof_zigzag((int64_t)(address - previous)));
            previous = address;
        }
        node = found;
    }
    free(copy);
    if (made) {
        sprof_encoder_begin_record(&tb->enc, SPROF_REC_FRAMES);
        sprof_encoder_varint(&tb->enc, t->id);
        sprof_encoder_varint(&tb->enc, t->count - made);
        sprof_encoder_bytes(&tb->enc, nodes, size);
        CHECK(sprof_encoder_end_record(&tb->enc));
        tb->record_count++;
    }
    return node;
}

/* One NODE_SAMPLES entry: samples at node of table, weighing weight_ns. */
static void put_node_samples(struct trace_builder *tb, const struct built_table *t, uint32_t tid,
                             uint32_t node, uint32_t samples, uint64_t weight_ns)
{
    sprof_encoder_begin_record(&tb->enc, SPROF_REC_NODE_SAMPLES);
    sprof_encoder_varint(&tb->enc, t->id);
    sprof_encoder_varint(&tb->enc, tid);
    sprof_encoder_varint(&tb->enc, 1000);
    sprof_encoder_varint(&tb->enc, (uint64_t)node << 1 | 1);
    sprof_encoder_varint(&tb->enc, (uint64_t)samples << 1 | 1);
    sprof_encoder_varint(&tb->enc, weight_ns);
    CHECK(sprof_encoder_end_record(&tb->enc));
    tb->record_count++;
}

/* Frame tables go straight into the functions' figures when no view needs
 * stacks (profile.without_stacks): one walk of the trace's tree of paths
 * must give what the stacks give, here checked by construction too. */
static void test_frame_tables_without_stacks(void)
{
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    static struct built_table one = {.id = 1, .count = 1}, two = {.id = 2, .count = 1},
                              three = {.id = 3, .count = 1};
    /* Recursion straight, mutual, and through an inlined frame. */
    uint32_t f3 = put_stack(&tb, &one, one.count, "f;f;f;main", false);
    uint32_t ab = put_stack(&tb, &one, one.count, "b;a;b;a;main", false);
    uint32_t in = put_stack(&tb, &one, one.count, "g/f;f;main", false);
    uint32_t cut = put_stack(&tb, &one, one.count, "x;f", true);
    /* Thread 101 defines f;f;f;main again in its own table. */
    uint32_t f3_again = put_stack(&tb, &two, two.count, "f;f;f;main", false);
    uint32_t y = put_stack(&tb, &two, two.count, "y;f;main", false);
    /* A lost write: node 2 of table 3 hangs below node 1, in a gap. */
    uint64_t z = tb_address(&tb, "z");
    sprof_encoder_begin_record(&tb.enc, SPROF_REC_FRAMES);
    sprof_encoder_varint(&tb.enc, three.id);
    sprof_encoder_varint(&tb.enc, 2);
    sprof_encoder_varint(&tb.enc, 1 << 1);
    sprof_encoder_varint(&tb.enc, sprof_zigzag((int64_t)z));
    CHECK(sprof_encoder_end_record(&tb.enc));
    tb.record_count++;
    uint32_t lost = 2;
    three.count = 3;
    /* Deeper than a stack may be. */
    char deep[4 * 1100] = "";
    for (int i = 0; i < 1100; i++)
        strcat(deep, "f;");
    strcat(deep, "main");
    uint32_t too_deep = put_stack(&tb, &three, three.count, deep, false);

    put_node_samples(&tb, &one, 100, f3, 4, 400);
    put_node_samples(&tb, &one, 100, ab, 3, 330);
    put_node_samples(&tb, &one, 100, in, 5, 505);
    put_node_samples(&tb, &one, 100, cut, 2, 22);
    put_node_samples(&tb, &two, 101, f3_again, 6, 606);
    put_node_samples(&tb, &two, 101, y, 1, 7);
    put_node_samples(&tb, &two, 101, f3_again, 1, 1);
    put_node_samples(&tb, &three, 102, lost, 2, 20);
    put_node_samples(&tb, &three, 102, too_deep, 9, 900);
    tb_finish(&tb, 22, 1871);
    char path[64];
    tb_write(&tb, path);
    tb_free(&tb);

    struct profile stacks, figures;
    profile_init(&stacks);
    profile_init(&figures);
    figures.without_stacks = true;
    char error[256], warning[256];
    CHECK(profile_load_file(&stacks, path, error, sizeof error, warning, sizeof warning) > 0);
    CHECK(profile_load_file(&figures, path, error, sizeof error, warning, sizeof warning) > 0);
    CHECK_CONTAINS(warning, "11 samples refer to stacks the trace does not define");
    /* Only the views that list stacks get them. */
    CHECK(stacks.stack_count > 0);
    CHECK_EQ(figures.stack_count, 0);
    CHECK_EQ(figures.total_samples, 22);
    CHECK_EQ(figures.total_weight_ns, 1871);

    struct loaded l = {figures, NULL, 0};
    l.stats = compute_function_stats(&l.profile, SORT_CUMULATIVE, &l.count);
    check_invariants(&l.profile, l.stats, l.count);
    /* f is on 5 stacks (on one of them through an inlined frame), counted
     * once on each however often it recurses. */
    CHECK_ROW(&l, "f", 11, 1007, 19, 1541);
    CHECK_ROW(&l, "main", 0, 0, 20, 1849);
    CHECK_ROW(&l, "a", 0, 0, 3, 330);
    CHECK_ROW(&l, "b", 3, 330, 3, 330);
    CHECK_ROW(&l, "g", 5, 505, 5, 505);
    CHECK_ROW(&l, "x", 2, 22, 2, 22);
    CHECK_ROW(&l, "[truncated stack]", 0, 0, 2, 22);
    CHECK_ROW(&l, "y", 1, 7, 1, 7);
    CHECK_EQ(l.count, 8);

    /* Every row, in every order, as computed stack by stack. */
    static const enum sort_key keys[] = {SORT_CUMULATIVE, SORT_SELF, SORT_SAMPLES, SORT_NAME};
    CHECK_EQ(figures.function_count, stacks.function_count);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        size_t count, expected_count;
        struct function_stats *got = compute_function_stats(&figures, keys[k], &count);
        struct function_stats *expected = compute_function_stats(&stacks, keys[k], &expected_count);
        CHECK_EQ(count, expected_count);
        for (size_t i = 0; i < count; i++) {
            const struct function_stats *a = &got[i], *b = &expected[i];
            CHECK_EQ(a->function, b->function);
            CHECK_EQ(a->self_samples, b->self_samples);
            CHECK_EQ(a->self_weight_ns, b->self_weight_ns);
            CHECK_EQ(a->cumulative_samples, b->cumulative_samples);
            CHECK_EQ(a->cumulative_weight_ns, b->cumulative_weight_ns);
            CHECK_EQ(a->root_distance, b->root_distance);
        }
        free(got);
        free(expected);
    }
    free(l.stats);
    profile_free(&stacks);
    profile_free(&figures);
}

static void test_empty_profile(void)
{
    struct profile profile;
    profile_init(&profile);
    size_t count = 99;
    CHECK(compute_function_stats(&profile, SORT_CUMULATIVE, &count) == NULL);
    CHECK_EQ(count, 0);
    profile_free(&profile);

    /* Stacks but no samples: functions, but no rows. */
    struct trace_builder tb;
    tb_init(&tb, 1, 100, 0);
    tb_stack(&tb, 1, 0, "idle;main");
    tb_finish(&tb, 0, 0);
    profile_init(&profile);
    load_built(&profile, &tb);
    tb_free(&tb);
    CHECK_EQ(profile.function_count, 2);
    count = 99;
    free(compute_function_stats(&profile, SORT_SELF, &count));
    CHECK_EQ(count, 0);
    profile_free(&profile);
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_self_and_cumulative),
        UNIT_CASE(test_recursion_counts_once),
        UNIT_CASE(test_function_in_two_stacks),
        UNIT_CASE(test_inlined_frames),
        UNIT_CASE(test_sort_orders),
        UNIT_CASE(test_sort_ties_callers_first),
        UNIT_CASE(test_sort_same_name),
        UNIT_CASE(test_unknown_stack_ignored),
        UNIT_CASE(test_truncated_stack),
        UNIT_CASE(test_frame_tables_without_stacks),
        UNIT_CASE(test_empty_profile),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
