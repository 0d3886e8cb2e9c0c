/* Loads trace files into a profile: checks every record, names addresses
 * (from the trace's SYMBOL records, or with libdw from the recorded modules
 * when the trace has none), and expands stacks into functions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "demangle.h"
#include "large_array.h"
#include "path_tree.h"
#include "profile.h"
#include "sprof/trace_format.h"
#include "symbolize.h"
#include "trace_codec.h"
#include "trace_reader.h"
#include "varint.h"

/* Room for one more element: the short name this file's many arrays use. */
#define GROW ARRAY_MAKE_ROOM

/* Makes *array (of element size) hold size elements or more; its contents
 * are not kept. False when out of memory. */
static bool reserve(void **array, size_t *capacity, size_t size, size_t element)
{
    if (size <= *capacity)
        return true;
    free(*array);
    *capacity = 0;
    if (!(*array = malloc(size * element)))
        return false;
    *capacity = size;
    return true;
}
#define RESERVE(array, capacity, size) \
    reserve((void **)&(array), &(capacity), (size), sizeof *(array))

void profile_init(struct profile *p)
{
    memset(p, 0, sizeof *p);
    sprof_string_table_init(&p->strings);
    sprof_map_init(&p->function_by_key);
    sprof_map_init(&p->edge_by_pair);
}

/* One module file's reader, by its path and build id. */
struct module_namer {
    uint32_t path; /* profile string */
    uint8_t build_id[SPROF_BUILD_ID_MAX];
    uint32_t build_id_size;
    struct sprof_symbolizer *symbolizer; /* the file at address 0; NULL: unusable */
};

void profile_free(struct profile *p)
{
    for (size_t i = 0; i < p->namer_count; i++)
        sprof_symbolizer_free(p->namers[i].symbolizer);
    free(p->namers);
    sprof_string_table_free(&p->strings);
    sprof_map_free(&p->function_by_key);
    free(p->functions);
    free(p->frames);
    free(p->stacks);
    free(p->threads);
    free(p->processes);
    free(p->edges);
    sprof_map_free(&p->edge_by_pair);
    for (size_t i = 0; i < p->notice_count; i++)
        free(p->notices[i]);
    free(p->notices);
    memset(p, 0, sizeof *p);
}

/* What one file holds, before it is merged into the profile. */
struct loaded_module {
    uint32_t id;
    uint32_t path; /* profile string */
    uint64_t load_bias, start, end;
    uint8_t build_id[SPROF_BUILD_ID_MAX];
    uint32_t build_id_size;
};
struct loaded_frame {
    uint32_t function;  /* profile string (raw linkage name) */
    uint32_t decl_file; /* profile string */
    uint32_t decl_line;
};
/* A named frame's function, found by the frame's string ids. */
struct function_memo_slot {
    uint32_t raw_name, decl_file, decl_line, module_path;
    uint32_t function; /* NONE: the slot is empty */
};
struct loaded_symbol {
    uint32_t first_frame, frame_count;
    uint32_t module_id;
    /* Named at exit after its module and offset only (no symbol there):
     * the analyzer may know better (debug files the exit does not read). */
    bool placeholder;
};
struct loaded_stack {
    size_t first_address;
    uint16_t depth, flags;
};
#define NONE UINT32_MAX
#define TRUNCATED_STACK_NAME "[truncated stack]"
/* Samples of one STACK record's stack on one thread (version 1). */
struct loaded_group {
    uint32_t stack; /* loaded_stack index */
    uint32_t tid;
    uint64_t samples, weight_ns;
};
/* One FRAMES table: one thread's nodes, by local id, as the path node of
 * their stack (PATH_NONE: in a gap, below one, or too deep). */
struct frame_table {
    uint32_t id;
    uint32_t tid; /* of its first NODE_SAMPLES record */
    bool has_tid;
    uint32_t *paths; /* [0] unused */
    size_t count;    /* local ids in use, 0 included */
    size_t capacity;
};
/* A FRAMES node, decoded. */
struct frame_entry {
    uint64_t address;
    uint32_t parent; /* local id; 0 for a root */
    bool truncated;  /* a root whose outer frames were cut */
};
/* Samples of one thread at defined stacks of frame tables. */
struct thread_samples {
    uint32_t tid;
    uint64_t samples, weight_ns;
};
struct loaded_thread {
    uint32_t tid, name;
    uint64_t cpu_ns;
};
/* One entry of a CALL_COUNTS record. */
struct loaded_count {
    uint32_t tid, sequence, kind;
    uint64_t first, second, count;
};

struct trace_file {
    struct profile *profile;
    struct process_info process;
    struct sprof_map string_ids; /* trace string id -> profile string */
    struct loaded_module *modules;
    size_t module_count, module_capacity;
    struct sprof_map symbol_by_address;
    struct loaded_symbol *symbols;
    size_t symbol_count, symbol_capacity;
    struct loaded_frame *frames;
    size_t frame_count, frame_capacity;
    struct loaded_symbol *chains; /* CHAIN records: symbols many addresses share */
    size_t chain_count, chain_capacity;
    struct sprof_map chain_by_id;
    struct sprof_map stack_by_id;
    struct loaded_stack *stacks;
    size_t stack_count, stack_capacity;
    uint64_t *addresses;
    size_t address_count, address_capacity;
    struct frame_table *tables;
    size_t table_count, table_capacity;
    struct sprof_map table_by_id;
    uint64_t undefined_nodes; /* made for gaps in tables; bounded */
    struct path_tree tree;    /* the tables' stacks */
    struct frame_entry *frame_entries; /* one FRAMES record's, decoded */
    size_t frame_entry_capacity;
    uint32_t *earlier_parents; /* its nodes' parents in earlier records */
    size_t earlier_parent_capacity;
    struct thread_samples *thread_samples;
    size_t thread_samples_count, thread_samples_capacity;
    struct sprof_map thread_samples_by_tid;
    struct sprof_map group_by_key;
    struct loaded_group *groups;
    size_t group_count, group_capacity;
    struct loaded_thread *threads;
    size_t thread_count, thread_capacity;
    struct loaded_count *counts;
    size_t count_count, count_capacity;
    /* Memo of named_function: a frame's string ids -> its function. */
    struct function_memo_slot *function_memo;
    size_t function_memo_count, function_memo_capacity;
    /* Memo of expand_address: address -> [count, functions...]. */
    struct sprof_map expanded;
    uint32_t *expansions;
    size_t expansion_count, expansion_capacity;
    uint64_t unknown_stack_refs;
    /* Whether naming addresses here ran out of memory. */
    bool symbolizer_failed;
    /* Addresses whose names from the exit are placeholders. */
    uint64_t *placeholders;
    size_t placeholder_count, placeholder_capacity;
    char **notices;
    size_t notice_count, notice_capacity;
};

static void trace_file_free(struct trace_file *f)
{
    sprof_map_free(&f->string_ids);
    sprof_map_free(&f->symbol_by_address);
    sprof_map_free(&f->stack_by_id);
    sprof_map_free(&f->group_by_key);
    free(f->placeholders);
    sprof_map_free(&f->chain_by_id);
    free(f->chains);
    sprof_map_free(&f->table_by_id);
    for (size_t i = 0; i < f->table_count; i++)
        free(f->tables[i].paths);
    free(f->tables);
    path_tree_free(&f->tree);
    free(f->frame_entries);
    free(f->earlier_parents);
    free(f->thread_samples);
    sprof_map_free(&f->thread_samples_by_tid);
    free(f->modules);
    free(f->symbols);
    free(f->frames);
    free(f->stacks);
    free(f->addresses);
    free(f->groups);
    free(f->threads);
    free(f->counts);
    sprof_map_free(&f->expanded);
    free(f->expansions);
    free(f->function_memo);
    for (size_t i = 0; i < f->notice_count; i++)
        free(f->notices[i]);
    free(f->notices);
}

static uint32_t intern(struct profile *p, const char *text, size_t length)
{
    return sprof_string_table_intern(&p->strings, text, length);
}

static uint32_t intern_cstr(struct profile *p, const char *text)
{
    return text ? intern(p, text, strlen(text)) : 0;
}

/* A string read from the trace, as a profile string id. */
static uint32_t decode_string(struct trace_file *f, struct sprof_decoder *dec)
{
    const char *text;
    uint32_t length;
    if (!sprof_decoder_string(dec, &text, &length))
        return 0;
    return intern(f->profile, text, length);
}

static uint32_t resolve_string(const struct trace_file *f, uint32_t trace_id)
{
    uint32_t id = 0;
    if (trace_id != SPROF_STRING_NONE)
        sprof_map_get(&f->string_ids, trace_id, &id);
    return id;
}

static bool read_process(struct trace_file *f, struct sprof_decoder *dec)
{
    struct process_info *pr = &f->process;
    pr->pid = sprof_decoder_u32(dec);
    pr->ppid = sprof_decoder_u32(dec);
    sprof_decoder_u64(dec); /* start time: not shown yet */
    pr->frequency_hz = sprof_decoder_u32(dec);
    pr->timer_kind = sprof_decoder_u32(dec);
    pr->period_ns = sprof_decoder_u64(dec);
    pr->max_depth = sprof_decoder_u32(dec);
    pr->flags = sprof_decoder_u32(dec);
    pr->executable = decode_string(f, dec);
    const char *command;
    uint32_t length;
    if (sprof_decoder_string(dec, &command, &length)) {
        char *joined = malloc(length + 1);
        if (joined) {
            for (uint32_t i = 0; i < length; i++)
                joined[i] = command[i] ? command[i] : ' ';
            pr->command = intern(f->profile, joined, length);
            free(joined);
        }
    }
    pr->warnings = decode_string(f, dec);
    pr->has_process_record = dec->ok;
    return dec->ok;
}

static bool read_module(struct trace_file *f, struct sprof_decoder *dec)
{
    struct loaded_module m;
    memset(&m, 0, sizeof m);
    m.id = sprof_decoder_u32(dec);
    m.build_id_size = sprof_decoder_u32(dec);
    m.load_bias = sprof_decoder_u64(dec);
    m.start = sprof_decoder_u64(dec);
    m.end = sprof_decoder_u64(dec);
    if (m.build_id_size > SPROF_BUILD_ID_MAX)
        return false;
    const uint8_t *id = sprof_decoder_bytes(dec, m.build_id_size);
    if (id)
        memcpy(m.build_id, id, m.build_id_size);
    m.path = decode_string(f, dec);
    if (!dec->ok || m.start > m.end || !GROW(f->modules, f->module_capacity, f->module_count))
        return false;
    f->modules[f->module_count++] = m;
    return true;
}

static bool read_string(struct trace_file *f, struct sprof_decoder *dec)
{
    uint32_t trace_id = sprof_decoder_u32(dec);
    size_t length = sprof_decoder_remaining(dec);
    const uint8_t *text = sprof_decoder_bytes(dec, length);
    if (!dec->ok || trace_id == SPROF_STRING_NONE)
        return false;
    uint32_t id = intern(f->profile, (const char *)text, length);
    return id && sprof_map_put(&f->string_ids, trace_id, id);
}

/* What address means, unless it was defined already: the first
 * definition stands. False when out of memory. */
static bool add_symbol(struct trace_file *f, uint64_t address, struct loaded_symbol s)
{
    uint32_t existing;
    if (sprof_map_get(&f->symbol_by_address, address, &existing))
        return true;
    if (!GROW(f->symbols, f->symbol_capacity, f->symbol_count))
        return false;
    if (s.placeholder) {
        if (!GROW(f->placeholders, f->placeholder_capacity, f->placeholder_count))
            return false;
        f->placeholders[f->placeholder_count++] = address;
    }
    f->symbols[f->symbol_count] = s;
    return sprof_map_put(&f->symbol_by_address, address, (uint32_t)f->symbol_count++);
}

static bool read_symbol(struct trace_file *f, struct sprof_decoder *dec)
{
    uint64_t address = sprof_decoder_u64(dec);
    struct loaded_symbol s;
    s.module_id = sprof_decoder_u32(dec);
    s.frame_count = sprof_decoder_u16(dec);
    s.placeholder = sprof_decoder_u16(dec) == SPROF_SYMBOL_UNWIND_TABLE;
    s.first_frame = (uint32_t)f->frame_count;
    if (!dec->ok || sprof_decoder_remaining(dec) < (size_t)s.frame_count * 20)
        return false;
    for (uint32_t i = 0; i < s.frame_count; i++) {
        struct loaded_frame frame;
        frame.function = resolve_string(f, sprof_decoder_u32(dec));
        sprof_decoder_u32(dec); /* file of the executing line */
        sprof_decoder_u32(dec); /* line */
        frame.decl_file = resolve_string(f, sprof_decoder_u32(dec));
        frame.decl_line = sprof_decoder_u32(dec);
        if (!GROW(f->frames, f->frame_capacity, f->frame_count))
            return false;
        f->frames[f->frame_count++] = frame;
    }
    return add_symbol(f, address, s);
}

static bool read_chain(struct trace_file *f, struct sprof_decoder *dec)
{
    uint32_t id = sprof_decoder_u32(dec);
    struct loaded_symbol chain;
    chain.module_id = sprof_decoder_u32(dec);
    chain.frame_count = sprof_decoder_u16(dec);
    chain.placeholder = sprof_decoder_u16(dec) == SPROF_SYMBOL_UNWIND_TABLE;
    chain.first_frame = (uint32_t)f->frame_count;
    uint32_t existing;
    if (!dec->ok || id == 0 || chain.frame_count > sprof_decoder_remaining(dec) / 4 ||
        sprof_map_get(&f->chain_by_id, id, &existing))
        return false;
    for (uint32_t i = 0; i < chain.frame_count; i++) {
        struct loaded_frame frame;
        frame.function = resolve_string(f, (uint32_t)sprof_decoder_varint(dec));
        sprof_decoder_varint(dec); /* file of the executing line */
        frame.decl_file = resolve_string(f, (uint32_t)sprof_decoder_varint(dec));
        frame.decl_line = (uint32_t)sprof_decoder_varint(dec);
        if (!dec->ok || !GROW(f->frames, f->frame_capacity, f->frame_count))
            return false;
        f->frames[f->frame_count++] = frame;
    }
    if (!GROW(f->chains, f->chain_capacity, f->chain_count))
        return false;
    f->chains[f->chain_count] = chain;
    return sprof_decoder_remaining(dec) == 0 &&
           sprof_map_put(&f->chain_by_id, id, (uint32_t)f->chain_count++);
}

static bool read_address_names(struct trace_file *f, struct sprof_decoder *dec)
{
    uint64_t address = 0;
    while (sprof_decoder_remaining(dec) > 0) {
        address += sprof_decoder_varint(dec);
        uint32_t chain_id = (uint32_t)sprof_decoder_varint(dec);
        uint32_t at;
        if (!dec->ok || !sprof_map_get(&f->chain_by_id, chain_id, &at))
            return false;
        struct loaded_symbol chain = f->chains[at];
        for (uint32_t i = 0; i < chain.frame_count; i++)
            sprof_decoder_varint(dec); /* lines */
        if (!dec->ok || !add_symbol(f, address, chain))
            return false;
    }
    return true;
}

static bool read_stack(struct trace_file *f, struct sprof_decoder *dec)
{
    uint32_t id = sprof_decoder_u32(dec);
    struct loaded_stack s;
    s.depth = sprof_decoder_u16(dec);
    s.flags = sprof_decoder_u16(dec);
    if (!dec->ok || s.depth > SPROF_STACK_MAX_DEPTH ||
        sprof_decoder_remaining(dec) < (size_t)s.depth * 8)
        return false;
    uint32_t existing;
    if (sprof_map_get(&f->stack_by_id, id, &existing))
        return true;
    s.first_address = f->address_count;
    for (uint16_t i = 0; i < s.depth; i++) {
        if (!GROW(f->addresses, f->address_capacity, f->address_count))
            return false;
        f->addresses[f->address_count++] = sprof_decoder_u64(dec);
    }
    if (!GROW(f->stacks, f->stack_capacity, f->stack_count))
        return false;
    f->stacks[f->stack_count] = s;
    return sprof_map_put(&f->stack_by_id, id, (uint32_t)f->stack_count++);
}

static bool read_samples(struct trace_file *f, struct sprof_decoder *dec)
{
    uint32_t tid = sprof_decoder_u32(dec);
    uint32_t count = sprof_decoder_u32(dec);
    if (!dec->ok || sprof_decoder_remaining(dec) < (size_t)count * 16)
        return false;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t stack_id = sprof_decoder_u32(dec);
        uint32_t samples = sprof_decoder_u32(dec);
        uint64_t weight = sprof_decoder_u64(dec);
        uint32_t stack;
        if (!sprof_map_get(&f->stack_by_id, stack_id, &stack)) {
            f->unknown_stack_refs += samples;
            continue;
        }
        uint64_t key = (uint64_t)stack << 32 | tid;
        uint32_t at;
        if (!sprof_map_get(&f->group_by_key, key, &at)) {
            if (!GROW(f->groups, f->group_capacity, f->group_count))
                return false;
            at = (uint32_t)f->group_count++;
            f->groups[at] = (struct loaded_group){.stack = stack, .tid = tid};
            if (!sprof_map_put(&f->group_by_key, key, at))
                return false;
        }
        f->groups[at].samples += samples;
        f->groups[at].weight_ns += weight;
    }
    return true;
}

/* Bytes of trace per distinct path node guessed when the tree is made. */
#define TRACE_BYTES_PER_PATH_GUESS 32

/* Gaps in tables (lost writes) get placeholder ids; this many at most per
 * file, so a hostile trace cannot make the reader allocate without end. */
#define UNDEFINED_NODES_MAX (1u << 22)

static struct frame_table *find_table(struct trace_file *f, uint32_t id, bool create)
{
    uint32_t at;
    if (sprof_map_get(&f->table_by_id, id, &at))
        return &f->tables[at];
    if (!create || !GROW(f->tables, f->table_capacity, f->table_count))
        return NULL;
    at = (uint32_t)f->table_count;
    if (!sprof_map_put(&f->table_by_id, id, at))
        return NULL;
    f->table_count++;
    f->tables[at] = (struct frame_table){.id = id};
    return &f->tables[at];
}

/* A table grows by doubling up to this many local ids, then to every id
 * it may have at once: a large table is then never copied, and the pages
 * of ids it does not use are never touched. */
#define TABLE_DOUBLING_MAX (1u << 16)

/* Room for local ids up to (not including) size, or for all there may be. */
static bool reserve_table(struct frame_table *t, size_t size)
{
    if (size > SPROF_FRAME_TABLE_MAX_NODES + 1)
        size = SPROF_FRAME_TABLE_MAX_NODES + 1;
    if (size <= t->capacity)
        return true;
    size_t capacity = t->capacity ? t->capacity : 64;
    while (capacity < size)
        capacity *= 2;
    if (capacity > TABLE_DOUBLING_MAX)
        capacity = SPROF_FRAME_TABLE_MAX_NODES + 1;
    if (!large_array_grow((void **)&t->paths, t->count, capacity, sizeof *t->paths))
        return false;
    t->capacity = capacity;
    if (t->count == 0) {
        t->paths[0] = PATH_NONE;
        t->count = 1;
    }
    return true;
}

/* Asks the memory for what the lookups of a record's nodes below nodes of
 * earlier records (their local ids: earlier) read first: those nodes'
 * paths, the path nodes, their first children. Each round uses what the
 * round before fetched. */
static void prefetch_frames(const struct frame_table *t, const struct path_tree *tree,
                            const uint32_t *earlier, size_t count)
{
    for (size_t i = 0; i < count; i++)
        __builtin_prefetch(&t->paths[earlier[i]]);
    for (size_t i = 0; i < count; i++)
        path_tree_prefetch(tree, t->paths[earlier[i]]);
    for (size_t i = 0; i < count; i++)
        path_tree_prefetch_first_child(tree, t->paths[earlier[i]]);
}

static const struct loaded_module *find_module(const struct trace_file *f, uint64_t address);

/* A stack's outermost frame in no module (code a JIT wrote, or an address
 * the unwinder made up) is where the unwinder lost the stack, not its
 * root: such a stack is shown as cut there, as truncated ones are, rather
 * than as a whole stack whose callers took none of its time. */
static bool root_can_end_stack(const struct trace_file *f, uint64_t address)
{
    return f->module_count == 0 || find_module(f, address) != NULL;
}

static bool read_frames(struct trace_file *f, struct sprof_decoder *dec)
{
    uint64_t table_id = sprof_decoder_varint(dec);
    uint64_t first = sprof_decoder_varint(dec);
    if (!dec->ok || table_id == 0 || table_id > UINT32_MAX || first == 0 ||
        first > SPROF_FRAME_TABLE_MAX_NODES)
        return false;
    /* Each node takes two bytes or more. */
    size_t most = sprof_decoder_remaining(dec) / 2;
    struct frame_table *t = find_table(f, (uint32_t)table_id, true);
    if (!t || !reserve_table(t, (size_t)first + most) || first < t->count ||
        !RESERVE(f->frame_entries, f->frame_entry_capacity, most) ||
        !RESERVE(f->earlier_parents, f->earlier_parent_capacity, most))
        return false; /* out of memory, or nodes defined twice */
    f->undefined_nodes += first - t->count;
    if (f->undefined_nodes > UNDEFINED_NODES_MAX)
        return false;
    while (t->count < first)
        t->paths[t->count++] = PATH_NONE; /* a gap */
    /* The record is decoded whole before its nodes are looked up, so that
     * their memory can be asked for at once. */
    /* The loops below are the analyzer's hottest: their state is kept in
     * locals, which calls out of them cannot change. */
    bool ok = true;
    size_t count = 0, earlier = 0;
    uint64_t address = 0;
    struct frame_entry *entries = f->frame_entries;
    uint32_t *earlier_parents = f->earlier_parents;
    const uint8_t *at = dec->cursor, *end = dec->end;
    while (at < end) {
        uint64_t distance_flags, zigzag;
        size_t local = first + count;
        if (!sprof_varint_get_fast(&at, end, &distance_flags) ||
            !sprof_varint_get_fast(&at, end, &zigzag) || (distance_flags >> 1) >= local ||
            local > SPROF_FRAME_TABLE_MAX_NODES) {
            ok = false;
            break; /* the nodes before it are defined */
        }
        address += (uint64_t)sprof_unzigzag(zigzag);
        uint32_t parent = (uint32_t)(local - (distance_flags >> 1));
        if (parent == local)
            parent = 0; /* a root */
        else if (parent < first)
            earlier_parents[earlier++] = parent;
        entries[count++] = (struct frame_entry){address, parent, (distance_flags & 1) != 0};
    }
    dec->cursor = at;
    prefetch_frames(t, &f->tree, earlier_parents, earlier);
    uint32_t *paths = t->paths;
    uint32_t previous = PATH_NONE; /* the path of the record's node before */
    for (size_t i = 0; i < count; i++) {
        const struct frame_entry *e = &entries[i];
        uint32_t local = (uint32_t)(first + i);
        /* Most nodes are the child of the node before them, whose path is
         * at hand. */
        uint32_t parent = i > 0 && e->parent == local - 1 ? previous
                          : e->parent                     ? paths[e->parent]
                          : e->truncated || !root_can_end_stack(f, e->address)
                              ? PATH_TRUNCATED
                              : PATH_ROOT;
        uint32_t path = PATH_NONE; /* below a gap, it stays undefined */
        if (parent != PATH_NONE && !path_tree_child(&f->tree, parent, e->address, &path)) {
            t->count = local;
            return false;
        }
        /* A root, or a stack going on from an earlier record, mostly goes
         * on along path nodes made one after another: asked for now. */
        if (path != PATH_NONE && e->parent < first)
            path_tree_prefetch_run(&f->tree, path);
        paths[local] = path;
        previous = path;
    }
    t->count = first + count;
    return ok;
}

/* The samples of thread tid at defined stacks; NULL when out of memory. */
static struct thread_samples *find_thread_samples(struct trace_file *f, uint32_t tid)
{
    uint32_t at;
    if (sprof_map_get(&f->thread_samples_by_tid, tid, &at))
        return &f->thread_samples[at];
    if (!GROW(f->thread_samples, f->thread_samples_capacity, f->thread_samples_count))
        return NULL;
    at = (uint32_t)f->thread_samples_count;
    if (!sprof_map_put(&f->thread_samples_by_tid, tid, at))
        return NULL;
    f->thread_samples_count++;
    f->thread_samples[at] = (struct thread_samples){.tid = tid};
    return &f->thread_samples[at];
}

/* A NODE_SAMPLES entry, decoded. */
struct node_entry {
    uint64_t local, samples, weight_ns;
};
/* Entries decoded at a time: a record's worth, mostly. */
#define ENTRY_BATCH 256
/* How far ahead of the entry being added its table slot (2 x) and then
 * its path's samples (1 x) are asked for. */
#define ENTRY_AHEAD 8

/* Adds entries of table t (or NULL) to the samples of their paths. Each
 * is a random place in large arrays: the memory is asked for ahead, so
 * that the waits of many entries overlap. False when out of memory. */
static bool add_node_entries(struct trace_file *f, const struct frame_table *t, uint32_t tid,
                             uint32_t *thread_at, const struct node_entry *entries,
                             size_t count)
{
    size_t in_table = 0; /* the first entries, ascending, have a local id in t */
    while (t && in_table < count && entries[in_table].local < t->count)
        in_table++;
    for (size_t i = 0; i < in_table && i < 2 * ENTRY_AHEAD; i++)
        __builtin_prefetch(&t->paths[entries[i].local]);
    for (size_t i = 0; i < in_table && i < ENTRY_AHEAD; i++)
        path_tree_prefetch_samples(&f->tree, t->paths[entries[i].local]);
    for (size_t i = 0; i < count; i++) {
        if (i + 2 * ENTRY_AHEAD < in_table)
            __builtin_prefetch(&t->paths[entries[i + 2 * ENTRY_AHEAD].local]);
        if (i + ENTRY_AHEAD < in_table)
            path_tree_prefetch_samples(&f->tree, t->paths[entries[i + ENTRY_AHEAD].local]);
        const struct node_entry *e = &entries[i];
        uint32_t path = i < in_table ? t->paths[e->local] : PATH_NONE;
        if (path == PATH_NONE) {
            f->unknown_stack_refs += e->samples;
            continue;
        }
        if (*thread_at == NONE) {
            struct thread_samples *found = find_thread_samples(f, tid);
            if (!found)
                return false;
            *thread_at = (uint32_t)(found - f->thread_samples);
        }
        if (!path_tree_add_samples(&f->tree, path, e->samples, e->weight_ns))
            return false;
        f->thread_samples[*thread_at].samples += e->samples;
        f->thread_samples[*thread_at].weight_ns += e->weight_ns;
    }
    return true;
}

static bool read_node_samples(struct trace_file *f, struct sprof_decoder *dec)
{
    uint64_t table_id = sprof_decoder_varint(dec);
    uint64_t tid = sprof_decoder_varint(dec);
    uint64_t period = sprof_decoder_varint(dec);
    if (!dec->ok || table_id > UINT32_MAX || tid > UINT32_MAX)
        return false;
    struct frame_table *t = find_table(f, (uint32_t)table_id, false);
    if (t && !t->has_tid) {
        t->tid = (uint32_t)tid;
        t->has_tid = true;
    }
    if (t && t->tid != tid)
        return false; /* a table belongs to one thread */
    struct node_entry batch[ENTRY_BATCH];
    size_t batched = 0;
    uint32_t thread_at = NONE; /* looked up at the first defined stack */
    uint64_t local = 0;
    bool ok = true;
    const uint8_t *at = dec->cursor, *end = dec->end; /* kept in registers */
    while (ok && at < end) {
        uint64_t delta_more = 0, samples_flags = 0, samples = 1, weight = period;
        bool read = sprof_varint_get_fast(&at, end, &delta_more);
        if (read && (delta_more & 1)) {
            read = sprof_varint_get_fast(&at, end, &samples_flags);
            samples = samples_flags >> 1;
            if (read && (samples_flags & 1))
                read = sprof_varint_get_fast(&at, end, &weight);
            else if (read && __builtin_mul_overflow(samples, period, &weight))
                ok = false;
        }
        uint64_t delta = delta_more >> 1;
        /* Entries ascend by node. */
        ok = ok && read && delta > 0 && delta <= SPROF_FRAME_TABLE_MAX_NODES && samples > 0 &&
             samples <= UINT32_MAX;
        if (!ok)
            break; /* the entries before it count */
        local += delta;
        batch[batched++] = (struct node_entry){local, samples, weight};
        if (batched == ENTRY_BATCH) {
            ok = add_node_entries(f, t, (uint32_t)tid, &thread_at, batch, batched);
            batched = 0;
        }
    }
    dec->cursor = at;
    return add_node_entries(f, t, (uint32_t)tid, &thread_at, batch, batched) && ok;
}

static bool read_thread(struct trace_file *f, struct sprof_decoder *dec)
{
    struct loaded_thread t;
    t.tid = sprof_decoder_u32(dec);
    sprof_decoder_u32(dec); /* flags */
    t.cpu_ns = sprof_decoder_u64(dec);
    sprof_decoder_u64(dec); /* samples: recounted from SAMPLES records */
    sprof_decoder_u64(dec); /* weight */
    t.name = decode_string(f, dec);
    if (!dec->ok || !GROW(f->threads, f->thread_capacity, f->thread_count))
        return false;
    f->threads[f->thread_count++] = t;
    return true;
}

static bool read_summary(struct trace_file *f, struct sprof_decoder *dec)
{
    struct process_info *pr = &f->process;
    pr->wall_ns = sprof_decoder_u64(dec);
    pr->user_ns = sprof_decoder_u64(dec);
    pr->system_ns = sprof_decoder_u64(dec);
    pr->profiler_cpu_ns = sprof_decoder_u64(dec);
    pr->max_rss_kb = sprof_decoder_u64(dec);
    pr->summary_samples = sprof_decoder_u64(dec);
    pr->summary_weight_ns = sprof_decoder_u64(dec);
    pr->lost = sprof_decoder_u64(dec);
    pr->truncated = sprof_decoder_u64(dec);
    pr->summary_threads = sprof_decoder_u32(dec);
    sprof_decoder_u32(dec);
    pr->has_summary = dec->ok;
    return dec->ok;
}

static bool read_notice(struct trace_file *f, struct sprof_decoder *dec)
{
    sprof_decoder_u32(dec); /* kind */
    const char *text;
    uint32_t length;
    if (!sprof_decoder_string(dec, &text, &length) ||
        !GROW(f->notices, f->notice_capacity, f->notice_count))
        return false;
    char *copy = strndup(text, length);
    if (!copy)
        return false;
    f->notices[f->notice_count++] = copy;
    return true;
}

static bool read_call_counts(struct trace_file *f, struct sprof_decoder *dec)
{
    uint32_t tid = sprof_decoder_u32(dec);
    uint32_t sequence = sprof_decoder_u32(dec);
    uint32_t kind = sprof_decoder_u32(dec);
    uint32_t count = sprof_decoder_u32(dec);
    uint64_t dropped = sprof_decoder_u64(dec);
    if (!dec->ok || (kind != SPROF_CALLS_FUNCTIONS && kind != SPROF_CALLS_EDGES) ||
        sprof_decoder_remaining(dec) < (size_t)count * 24)
        return false;
    /* The drop count rides on a pseudo-entry of kind 0. */
    if (!GROW(f->counts, f->count_capacity, f->count_count))
        return false;
    f->counts[f->count_count++] = (struct loaded_count){tid, sequence, 0, 0, 0, dropped};
    for (uint32_t i = 0; i < count; i++) {
        struct loaded_count c = {tid, sequence, kind, 0, 0, 0};
        c.first = sprof_decoder_u64(dec);
        c.second = sprof_decoder_u64(dec);
        c.count = sprof_decoder_u64(dec);
        if (!GROW(f->counts, f->count_capacity, f->count_count))
            return false;
        f->counts[f->count_count++] = c;
    }
    return true;
}

static bool read_record(struct trace_file *f, const struct sprof_record *record)
{
    struct sprof_decoder dec;
    sprof_decoder_init(&dec, record->payload, record->size);
    switch (record->type) {
    case SPROF_REC_PROCESS: return read_process(f, &dec);
    case SPROF_REC_MODULE: return read_module(f, &dec);
    case SPROF_REC_THREAD: return read_thread(f, &dec);
    case SPROF_REC_STACK: return read_stack(f, &dec);
    case SPROF_REC_SAMPLES: return read_samples(f, &dec);
    case SPROF_REC_FRAMES: return read_frames(f, &dec);
    case SPROF_REC_CHAIN: return read_chain(f, &dec);
    case SPROF_REC_ADDRESS_NAMES: return read_address_names(f, &dec);
    case SPROF_REC_NODE_SAMPLES: return read_node_samples(f, &dec);
    case SPROF_REC_STRING: return read_string(f, &dec);
    case SPROF_REC_SYMBOL: return read_symbol(f, &dec);
    case SPROF_REC_SUMMARY: return read_summary(f, &dec);
    case SPROF_REC_NOTICE: return read_notice(f, &dec);
    case SPROF_REC_CALL_COUNTS: return read_call_counts(f, &dec);
    case SPROF_REC_END: f->process.ended_cleanly = true; return true;
    default: return true; /* a newer writer's record: skipped */
    }
}

static const struct loaded_module *find_module(const struct trace_file *f, uint64_t address)
{
    for (size_t i = f->module_count; i-- > 0;) {
        if (address >= f->modules[i].start && address < f->modules[i].end)
            return &f->modules[i];
    }
    return NULL;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* libdw out of memory in the middle of reading DWARF (its own handler says
 * "libdw: Cannot allocate memory" and exits 1, the status of a usage
 * error): the analyzer's one line and status for running out of memory,
 * before any report is printed. */
__attribute__((noreturn)) static void libdw_out_of_memory(void)
{
    fputs("sprof-analyze: out of memory (naming addresses with libdw)\n", stderr);
    exit(2); /* main.c's EXIT_BAD_TRACE, as for any allocation that fails */
}

/* The reader of module m's file, made on first need and shared by every
 * trace; NULL when the file cannot be used (not absolute, missing, another
 * build) or memory ran out (*failed). */
static struct sprof_symbolizer *module_namer(struct profile *p, const struct loaded_module *m,
                                             bool *failed)
{
    for (size_t i = 0; i < p->namer_count; i++) {
        struct module_namer *n = &p->namers[i];
        if (n->path == m->path && n->build_id_size == m->build_id_size &&
            memcmp(n->build_id, m->build_id, m->build_id_size) == 0)
            return n->symbolizer;
    }
    const char *path = sprof_string_table_get(&p->strings, m->path);
    struct sprof_symbolizer *symbolizer = NULL;
    if (path[0] == '/') {
        symbolizer = sprof_symbolizer_new(true);
        if (!symbolizer) {
            *failed = true;
            return NULL;
        }
        sprof_symbolizer_on_out_of_memory(symbolizer, libdw_out_of_memory);
        struct sprof_module_desc desc = {path, 0, m->build_id, m->build_id_size};
        char why[256];
        if (!sprof_symbolizer_add_module(symbolizer, &desc, why, sizeof why)) {
            sprof_symbolizer_free(symbolizer);
            symbolizer = NULL;
        }
    }
    if (!GROW(p->namers, p->namer_capacity, p->namer_count)) {
        sprof_symbolizer_free(symbolizer);
        *failed = true;
        return NULL;
    }
    struct module_namer *n = &p->namers[p->namer_count++];
    n->path = m->path;
    memcpy(n->build_id, m->build_id, m->build_id_size);
    n->build_id_size = m->build_id_size;
    n->symbolizer = symbolizer;
    return symbolizer;
}

/* Names address with libdw into s's frames; *flags says how (0: not
 * named). False when memory ran out. */
static bool name_with_libdw(struct trace_file *f, uint64_t address, struct loaded_symbol *s,
                            uint16_t *flags)
{
    struct profile *p = f->profile;
    const struct loaded_module *m = find_module(f, address);
    *s = (struct loaded_symbol){(uint32_t)f->frame_count, 0,
                                m ? m->id : SPROF_MODULE_NONE, false};
    *flags = 0;
    bool failed = false;
    struct sprof_symbolizer *symbolizer = m ? module_namer(p, m, &failed) : NULL;
    if (failed)
        return false;
    if (!symbolizer)
        return true;
    f->process.symbolized_here = true;
    struct sprof_frame_desc frames[MAX_INLINE_FRAMES];
    int count = sprof_symbolizer_lookup(symbolizer, address - m->load_bias, frames,
                                        MAX_INLINE_FRAMES, flags);
    for (int k = 0; k < count; k++) {
        if (!GROW(f->frames, f->frame_capacity, f->frame_count))
            return false;
        f->frames[f->frame_count++] = (struct loaded_frame){
            intern_cstr(p, frames[k].function), intern_cstr(p, frames[k].decl_file),
            frames[k].decl_line};
        s->frame_count++;
    }
    return true;
}

/* Names one address with libdw unless a SYMBOL record did. False when
 * memory ran out. */
static bool symbolize_address(struct trace_file *f, uint64_t address)
{
    uint32_t existing;
    if (sprof_map_get(&f->symbol_by_address, address, &existing))
        return true;
    struct loaded_symbol s;
    uint16_t flags;
    return name_with_libdw(f, address, &s, &flags) && add_symbol(f, address, s);
}

/* An address the exit named after its module and offset keeps that name
 * unless the analyzer finds a symbol for it (a debug file installed where
 * the exit does not look): else one function would show under two names
 * where a run's processes were named apart (a child ended by _exit, whose
 * trace the analyzer names). */
static bool improve_placeholder(struct trace_file *f, uint64_t address)
{
    uint32_t at;
    if (!sprof_map_get(&f->symbol_by_address, address, &at))
        return true;
    struct loaded_symbol better;
    uint16_t flags;
    if (!name_with_libdw(f, address, &better, &flags))
        return false;
    if (better.frame_count > 0 && flags != SPROF_SYMBOL_UNWIND_TABLE)
        f->symbols[at] = better;
    return true;
}

/* Names, with libdw, the addresses the trace's SYMBOL records do not, and
 * those they name by placeholders. */
static void symbolize_missing(struct trace_file *f)
{
    bool ok = true;
    for (size_t i = 0; ok && i < f->placeholder_count; i++)
        ok = improve_placeholder(f, f->placeholders[i]);
    for (size_t i = 0; ok && i < f->address_count; i++)
        ok = symbolize_address(f, f->addresses[i]);
    for (size_t i = 0; ok && i < f->count_count; i++) {
        const struct loaded_count *c = &f->counts[i];
        if (c->kind == 0)
            continue;
        ok = symbolize_address(f, c->first);
        if (ok && c->kind == SPROF_CALLS_EDGES)
            ok = symbolize_address(f, c->second);
    }
    f->symbolizer_failed = !ok;
}

/* The function for a (name, declaration, module), created on first use.
 * Returns UINT32_MAX when out of memory. */
static uint32_t function_index(struct profile *p, uint32_t raw_name, uint32_t decl_file,
                               uint32_t decl_line, uint32_t module_path, const char *fallback)
{
    const char *module = sprof_string_table_get(&p->strings, module_path);
    const char *name = raw_name ? sprof_string_table_get(&p->strings, raw_name) : fallback;
    const char *file = sprof_string_table_get(&p->strings, decl_file);
    /* The whole of every part: long C++ names may differ only at the end. */
    char *key = NULL;
    int length = asprintf(&key, "%s\x1f%s\x1f%u\x1f%s", name, file, decl_line, module);
    if (length < 0)
        return UINT32_MAX;
    uint32_t key_id = intern(p, key, (size_t)length);
    free(key);
    if (!key_id)
        return UINT32_MAX;
    uint32_t index;
    if (sprof_map_get(&p->function_by_key, key_id, &index))
        return index;
    if (!GROW(p->functions, p->function_capacity, p->function_count))
        return UINT32_MAX;
    struct function fn = {.root_distance = UINT32_MAX};
    char *demangled = sprof_demangle(name);
    fn.name = intern_cstr(p, demangled ? demangled : name);
    free(demangled);
    fn.module = module_path;
    if (decl_file) {
        char location[512];
        if (decl_line)
            snprintf(location, sizeof location, "%s:%u", file, decl_line);
        else
            snprintf(location, sizeof location, "%s", file);
        fn.location = intern_cstr(p, location);
    } else {
        fn.location = intern_cstr(p, base_name(module));
    }
    index = (uint32_t)p->function_count++;
    p->functions[index] = fn;
    sprof_map_put(&p->function_by_key, key_id, index);
    return index;
}

static bool push_frame(struct profile *p, uint32_t function)
{
    if (function == UINT32_MAX || !GROW(p->frames, p->frame_capacity, p->frame_count))
        return false;
    p->frames[p->frame_count++] = function;
    return true;
}

static size_t function_memo_at(const struct function_memo_slot *slots, size_t capacity,
                               const struct loaded_frame *frame, uint32_t module_path)
{
    uint64_t hash = sprof_hash64((uint64_t)frame->function << 32 | frame->decl_file) ^
                    sprof_hash64((uint64_t)frame->decl_line << 32 | module_path);
    size_t at = (size_t)hash & (capacity - 1);
    while (slots[at].function != NONE &&
           (slots[at].raw_name != frame->function || slots[at].decl_file != frame->decl_file ||
            slots[at].decl_line != frame->decl_line || slots[at].module_path != module_path))
        at = (at + 1) & (capacity - 1);
    return at;
}

/* Makes room for one more memo entry. False when out of memory. */
static bool function_memo_reserve(struct trace_file *f)
{
    if ((f->function_memo_count + 1) * 2 <= f->function_memo_capacity)
        return true;
    size_t capacity = f->function_memo_capacity ? f->function_memo_capacity * 2 : 256;
    struct function_memo_slot *slots = malloc(capacity * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < capacity; i++)
        slots[i].function = NONE;
    for (size_t i = 0; i < f->function_memo_capacity; i++) {
        const struct function_memo_slot *old = &f->function_memo[i];
        if (old->function == NONE)
            continue;
        struct loaded_frame frame = {old->raw_name, old->decl_file, old->decl_line};
        slots[function_memo_at(slots, capacity, &frame, old->module_path)] = *old;
    }
    free(f->function_memo);
    f->function_memo = slots;
    f->function_memo_capacity = capacity;
    return true;
}

/* function_index for a named frame: the same frame comes back for many
 * addresses (every address of a function, its inlined sites), and making
 * its key costs a formatted string and its interning. The answer is the
 * same as function_index's: a frame's string ids stand for its texts. */
static uint32_t named_function(struct trace_file *f, const struct loaded_frame *frame,
                               uint32_t module_path)
{
    if (!function_memo_reserve(f))
        return function_index(f->profile, frame->function, frame->decl_file, frame->decl_line,
                              module_path, "??");
    size_t at = function_memo_at(f->function_memo, f->function_memo_capacity, frame, module_path);
    struct function_memo_slot *slot = &f->function_memo[at];
    if (slot->function != NONE)
        return slot->function;
    uint32_t function = function_index(f->profile, frame->function, frame->decl_file,
                                       frame->decl_line, module_path, "??");
    if (function != UINT32_MAX) {
        *slot = (struct function_memo_slot){frame->function, frame->decl_file, frame->decl_line,
                                            module_path, function};
        f->function_memo_count++;
    }
    return function;
}

/* The functions at one address, innermost (inlined) first; returns how
 * many were written to out (at least 1 unless out of memory). */
static uint32_t address_functions(struct trace_file *f, uint64_t address, uint32_t *out,
                                  uint32_t max)
{
    struct profile *p = f->profile;
    uint32_t at;
    const struct loaded_symbol *s =
        sprof_map_get(&f->symbol_by_address, address, &at) ? &f->symbols[at] : NULL;
    const struct loaded_module *m = find_module(f, address);
    uint32_t module_path = m ? m->path : 0;
    uint32_t count = 0;
    if (s && s->frame_count > 0) {
        for (uint32_t i = 0; i < s->frame_count && count < max; i++) {
            const struct loaded_frame *fr = &f->frames[s->first_frame + i];
            uint32_t function = named_function(f, fr, module_path);
            if (function != UINT32_MAX)
                out[count++] = function;
        }
        return count;
    }
    char name[320];
    if (m)
        snprintf(name, sizeof name, "%s+0x%" PRIx64,
                 base_name(sprof_string_table_get(&p->strings, m->path)), address - m->load_bias);
    else
        snprintf(name, sizeof name, "0x%" PRIx64, address);
    uint32_t function = function_index(p, 0, 0, 0, module_path, name);
    if (function != UINT32_MAX && max > 0)
        out[count++] = function;
    return count;
}

/* Appends an expansion (a count, then that many functions) to
 * f->expansions; returns its offset, or NONE when out of memory. */
static uint32_t add_expansion(struct trace_file *f, const uint32_t *functions, uint32_t count)
{
    if (f->expansion_count + count + 1 > f->expansion_capacity) {
        size_t capacity = f->expansion_capacity ? f->expansion_capacity * 2 : 1024;
        while (capacity < f->expansion_count + count + 1)
            capacity *= 2;
        uint32_t *grown = capacity < NONE ? realloc(f->expansions, capacity * sizeof *grown) : NULL;
        if (!grown)
            return NONE;
        f->expansions = grown;
        f->expansion_capacity = capacity;
    }
    uint32_t at = (uint32_t)f->expansion_count;
    f->expansions[at] = count;
    memcpy(f->expansions + at + 1, functions, count * sizeof *functions);
    f->expansion_count += count + 1;
    return at;
}

/* The functions at one address, innermost (inlined) first, as the offset
 * of their expansion in f->expansions; NONE when out of memory. Each
 * address is worked out once per file: stacks repeat their addresses, and
 * naming a function builds and interns a key. */
static uint32_t address_expansion(struct trace_file *f, uint64_t address)
{
    uint32_t at;
    if (sprof_map_get(&f->expanded, address, &at))
        return at;
    uint32_t functions[MAX_INLINE_FRAMES];
    if (!f->symbolizer_failed)
        f->symbolizer_failed = !symbolize_address(f, address);
    uint32_t count = address_functions(f, address, functions, MAX_INLINE_FRAMES);
    at = add_expansion(f, functions, count);
    if (at == NONE || !sprof_map_put(&f->expanded, address, at))
        return NONE;
    return at;
}

/* Expands one address into functions, innermost first, onto p->frames. */
static void expand_address(struct trace_file *f, uint64_t address)
{
    uint32_t at = address_expansion(f, address);
    if (at == NONE)
        return;
    for (uint32_t i = 0; i < f->expansions[at]; i++)
        push_frame(f->profile, f->expansions[at + 1 + i]);
}

static void add_edge(struct profile *p, uint32_t caller, uint32_t callee, uint64_t calls)
{
    uint64_t key = (uint64_t)caller << 32 | callee;
    uint32_t at;
    if (!sprof_map_get(&p->edge_by_pair, key, &at)) {
        if (!GROW(p->edges, p->edge_capacity, p->edge_count))
            return;
        at = (uint32_t)p->edge_count++;
        p->edges[at] = (struct call_edge){caller, callee, 0};
        sprof_map_put(&p->edge_by_pair, key, at);
    }
    p->edges[at].calls += calls;
}

/* Adds each thread's latest call-count snapshot to the functions. */
static void merge_call_counts(struct trace_file *f)
{
    struct profile *p = f->profile;
    struct sprof_map latest; /* tid -> highest sequence */
    sprof_map_init(&latest);
    for (size_t i = 0; i < f->count_count; i++) {
        uint32_t sequence;
        if (!sprof_map_get(&latest, f->counts[i].tid, &sequence) ||
            f->counts[i].sequence > sequence)
            sprof_map_put(&latest, f->counts[i].tid, f->counts[i].sequence);
    }
    /* A snapshot's drop count is repeated in each of its records. */
    struct sprof_map dropped_seen;
    sprof_map_init(&dropped_seen);
    for (size_t i = 0; i < f->count_count; i++) {
        const struct loaded_count *c = &f->counts[i];
        uint32_t sequence = 0;
        sprof_map_get(&latest, c->tid, &sequence);
        if (c->sequence != sequence)
            continue;
        p->has_call_counts = true;
        uint32_t functions[MAX_INLINE_FRAMES];
        if (c->kind == 0) {
            uint32_t ignored;
            if (!sprof_map_get(&dropped_seen, c->tid, &ignored)) {
                sprof_map_put(&dropped_seen, c->tid, 1);
                p->dropped_calls += c->count;
            }
        } else if (c->kind == SPROF_CALLS_FUNCTIONS) {
            /* At a function's entry the outermost frame is the function. */
            uint32_t n = address_functions(f, c->first, functions, MAX_INLINE_FRAMES);
            if (n > 0) {
                p->functions[functions[n - 1]].calls += c->second;
                p->functions[functions[n - 1]].primitive_calls += c->count;
            }
        } else {
            /* The caller is the code at the call site, inlined or not. */
            uint32_t n = address_functions(f, c->first, functions, MAX_INLINE_FRAMES);
            uint32_t caller = n > 0 ? functions[0] : UINT32_MAX;
            n = address_functions(f, c->second, functions, MAX_INLINE_FRAMES);
            if (caller != UINT32_MAX && n > 0)
                add_edge(p, caller, functions[n - 1], c->count);
        }
    }
    sprof_map_free(&latest);
    sprof_map_free(&dropped_seen);
}

static uint32_t thread_index(struct profile *p, uint32_t process, uint32_t tid)
{
    for (size_t i = p->thread_count; i-- > 0;) {
        if (p->threads[i].process == process && p->threads[i].tid == tid)
            return (uint32_t)i;
    }
    if (!GROW(p->threads, p->thread_capacity, p->thread_count))
        return 0;
    p->threads[p->thread_count] = (struct thread_info){.process = process, .tid = tid};
    return (uint32_t)p->thread_count++;
}

static void add_notice(struct profile *p, const char *text)
{
    for (size_t i = 0; i < p->notice_count; i++) {
        if (!strcmp(p->notices[i], text))
            return;
    }
    char **notices = realloc(p->notices, (p->notice_count + 1) * sizeof *notices);
    if (!notices)
        return;
    p->notices = notices;
    if ((p->notices[p->notice_count] = strdup(text)))
        p->notice_count++;
}

/* The thread samples are counted towards, looked up only when it changes:
 * a thread's samples mostly come together. */
struct thread_lookup {
    uint32_t process, tid, thread; /* thread: NONE before the first */
};

/* Counts samples of one thread towards it and the profile's totals. */
static void count_samples(struct profile *p, struct thread_lookup *last, uint32_t tid,
                          uint64_t samples, uint64_t weight_ns)
{
    if (last->thread == NONE || tid != last->tid) {
        last->thread = thread_index(p, last->process, tid);
        last->tid = tid;
    }
    p->threads[last->thread].samples += samples;
    p->threads[last->thread].weight_ns += weight_ns;
    p->total_samples += samples;
    p->total_weight_ns += weight_ns;
}

/* Version 1: STACK records become profile stacks, with the samples of the
 * SAMPLES records that refer to them. */
static bool merge_stack_records(struct trace_file *f, struct thread_lookup *threads)
{
    struct profile *p = f->profile;
    size_t first_stack = p->stack_count;
    for (size_t i = 0; i < f->stack_count; i++) {
        const struct loaded_stack *s = &f->stacks[i];
        if (!GROW(p->stacks, p->stack_capacity, p->stack_count))
            return false;
        struct logical_stack ls = {(uint32_t)p->frame_count, 0, s->flags & SPROF_STACK_TRUNCATED,
                                   0, 0};
        for (uint16_t k = 0; k < s->depth; k++)
            expand_address(f, f->addresses[s->first_address + k]);
        if (ls.truncated)
            push_frame(p, function_index(p, 0, 0, 0, 0, TRUNCATED_STACK_NAME));
        ls.depth = (uint32_t)(p->frame_count - ls.first_frame);
        p->stacks[p->stack_count++] = ls;
    }
    for (size_t i = 0; i < f->group_count; i++) {
        const struct loaded_group *g = &f->groups[i];
        p->stacks[first_stack + g->stack].samples += g->samples;
        p->stacks[first_stack + g->stack].weight_ns += g->weight_ns;
        count_samples(p, threads, g->tid, g->samples, g->weight_ns);
    }
    return true;
}

/* Each sampled path becomes a profile stack, in the order of their first
 * samples, for the views that list stacks. */
static bool merge_path_stacks(struct trace_file *f)
{
    struct profile *p = f->profile;
    const struct path_tree *tree = &f->tree;
    for (size_t i = 0; i < tree->sampled_count; i++) {
        uint32_t leaf = tree->sampled[i];
        if (!GROW(p->stacks, p->stack_capacity, p->stack_count))
            return false;
        struct logical_stack ls = {(uint32_t)p->frame_count, 0, false,
                                   tree->samples[leaf].samples, tree->samples[leaf].weight_ns};
        uint32_t at = leaf;
        for (; at != PATH_ROOT && at != PATH_TRUNCATED; at = tree->parents[at])
            expand_address(f, tree->nodes[at].address);
        ls.truncated = at == PATH_TRUNCATED;
        if (ls.truncated)
            push_frame(p, function_index(p, 0, 0, 0, 0, TRUNCATED_STACK_NAME));
        ls.depth = (uint32_t)(p->frame_count - ls.first_frame);
        p->stacks[p->stack_count++] = ls;
    }
    return true;
}

struct first_use {
    uint64_t key;
    uint32_t address; /* index among the tree's addresses; NONE: the truncation mark */
};

static int compare_first_uses(const void *left, const void *right)
{
    const struct first_use *a = left, *b = right;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* Names the sampled paths' addresses, making their functions in the order
 * merge_path_stacks would (the order breaks ties between rows of the same
 * name): expansion_at[address index] gets the offset of its expansion, or
 * of an empty one if no sampled stack has it. False when out of memory. */
static bool expand_path_addresses(struct trace_file *f, uint32_t *expansion_at,
                                  uint32_t *truncated_function)
{
    const struct path_tree *tree = &f->tree;
    size_t count = tree->address_count;
    uint64_t *first_use = malloc((count ? count : 1) * sizeof *first_use);
    uint32_t *rank = malloc(tree->count * sizeof *rank);
    struct first_use *order = malloc((count + 1) * sizeof *order);
    uint32_t no_function = 0;
    uint32_t empty = add_expansion(f, &no_function, 0);
    bool ok = first_use && rank && order && empty != NONE;
    if (ok) {
        memset(first_use, 0xff, count * sizeof *first_use); /* PATH_UNUSED */
        uint64_t truncated_first_use = PATH_UNUSED;
        path_tree_first_uses(tree, rank, first_use, &truncated_first_use);
        size_t used = 0;
        for (size_t a = 0; a < count; a++) {
            expansion_at[a] = empty;
            if (first_use[a] != PATH_UNUSED)
                order[used++] = (struct first_use){first_use[a], (uint32_t)a};
        }
        if (truncated_first_use != PATH_UNUSED)
            order[used++] = (struct first_use){truncated_first_use, NONE};
        qsort(order, used, sizeof *order, compare_first_uses);
        *truncated_function = PATH_NONE;
        for (size_t i = 0; ok && i < used; i++) {
            uint32_t a = order[i].address;
            if (a == NONE)
                *truncated_function = function_index(f->profile, 0, 0, 0, 0, TRUNCATED_STACK_NAME);
            else
                ok = (expansion_at[a] = address_expansion(f, tree->addresses[a])) != NONE;
        }
    }
    free(first_use);
    free(rank);
    free(order);
    return ok;
}

/* The sampled paths go straight into the functions' figures, without a
 * stack each. */
static bool merge_path_figures(struct trace_file *f)
{
    struct profile *p = f->profile;
    struct path_walk walk;
    uint32_t *expansion_at =
        malloc((f->tree.address_count ? f->tree.address_count : 1) * sizeof *expansion_at);
    bool ok = expansion_at && expand_path_addresses(f, expansion_at, &walk.truncated_function);
    walk.expansions = f->expansions;
    walk.expansion_at = expansion_at;
    walk.functions = p->functions;
    walk.on_path = calloc(p->function_count ? p->function_count : 1, sizeof *walk.on_path);
    ok = ok && walk.on_path;
    if (ok)
        path_tree_add_figures(&f->tree, &walk);
    free(expansion_at);
    free(walk.on_path);
    return ok;
}

static bool merge_into_profile(struct trace_file *f)
{
    struct profile *p = f->profile;
    if (!GROW(p->processes, p->process_capacity, p->process_count))
        return false;
    uint32_t process = (uint32_t)p->process_count++;
    p->processes[process] = f->process;
    struct thread_lookup threads = {process, 0, NONE};
    if (!merge_stack_records(f, &threads))
        return false;
    if (!(p->without_stacks ? merge_path_figures(f) : merge_path_stacks(f)))
        return false;
    for (size_t i = 0; i < f->thread_samples_count; i++) {
        const struct thread_samples *t = &f->thread_samples[i];
        count_samples(p, &threads, t->tid, t->samples, t->weight_ns);
    }
    for (size_t i = 0; i < f->thread_count; i++) {
        uint32_t thread = thread_index(p, process, f->threads[i].tid);
        p->threads[thread].name = f->threads[i].name;
        p->threads[thread].cpu_ns = f->threads[i].cpu_ns;
    }
    for (size_t i = 0; i < f->notice_count; i++)
        add_notice(p, f->notices[i]);
    merge_call_counts(f);
    return true;
}

int profile_load_file(struct profile *p, const char *path, char *error, size_t error_size,
                      char *warning, size_t warning_size)
{
    warning[0] = '\0';
    struct sprof_reader reader;
    if (sprof_reader_open(&reader, path) != 0) {
        snprintf(error, error_size, "%s", reader.error);
        sprof_reader_close(&reader);
        return -1;
    }
    struct trace_file f;
    memset(&f, 0, sizeof f);
    f.profile = p;
    if (!path_tree_init(&f.tree)) {
        snprintf(error, error_size, "out of memory");
        sprof_reader_close(&reader);
        return -1;
    }
    /* Frame nodes take two bytes or more, and new tables define their
     * stacks again: few traces have a distinct path per 32 bytes. A trace
     * with more grows its tree by doubling, as without the guess. */
    struct stat file_stat;
    if (fstat(fileno(reader.file), &file_stat) == 0 && S_ISREG(file_stat.st_mode))
        path_tree_expect(&f.tree, (size_t)file_stat.st_size / TRACE_BYTES_PER_PATH_GUESS);
    int records = 0;
    struct sprof_record record;
    enum sprof_read_status status;
    while ((status = sprof_reader_next(&reader, &record)) == SPROF_READ_RECORD) {
        if (!read_record(&f, &record)) {
            snprintf(warning, warning_size,
                     "corrupt record of type %u at offset %" PRIu64 "; read up to it",
                     record.type, record.offset);
            break;
        }
        records++;
    }
    if (status != SPROF_READ_RECORD && status != SPROF_READ_EOF)
        snprintf(warning, warning_size, "%s; read the %d records before it", reader.error, records);
    sprof_reader_close(&reader);
    if (records == 0) {
        if (warning[0])
            snprintf(error, error_size, "no usable record (%s)", warning);
        else
            snprintf(error, error_size, "the trace holds no records");
        warning[0] = '\0';
        trace_file_free(&f);
        return -1;
    }
    symbolize_missing(&f);
    bool merged = merge_into_profile(&f);
    if (f.unknown_stack_refs > 0 && !warning[0])
        snprintf(warning, warning_size,
                 "%" PRIu64 " samples refer to stacks the trace does not define; left out",
                 f.unknown_stack_refs);
    trace_file_free(&f);
    if (!merged) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    return records;
}

bool trace_run_identity(const char *path, uint64_t *run_id, bool *is_root, uint32_t *pid)
{
    struct sprof_reader reader;
    if (sprof_reader_open(&reader, path) != 0) {
        sprof_reader_close(&reader);
        return false;
    }
    *run_id = reader.header.run_id;
    *pid = reader.header.pid;
    *is_root = false;
    struct sprof_record record;
    bool found = false;
    if (sprof_reader_next(&reader, &record) == SPROF_READ_RECORD &&
        record.type == SPROF_REC_PROCESS && record.size >= 40) {
        struct sprof_decoder dec;
        sprof_decoder_init(&dec, record.payload + 36, 4);
        *is_root = (sprof_decoder_u32(&dec) & SPROF_PROCESS_ROOT) != 0;
        found = true;
    }
    sprof_reader_close(&reader);
    return found;
}
