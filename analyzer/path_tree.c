/* The file's stacks as one tree of distinct paths, and the function figures
 * computed on it.
 *
 * A node's children are found by scanning its list of them: nearly every
 * node of a stack has one child or a few. Families larger than
 * FAMILY_SCAN_MAX are found through a hash table instead, so that no input
 * makes a lookup long.
 *
 * The figures come from one depth-first walk that keeps the current path:
 * a function is on it when some node of the path has it, and it counts a
 * subtree's samples once, at the outermost node that has it (recursion
 * below adds nothing more). A node's subtree samples are known when the
 * walk leaves it. */
#include <stdlib.h>
#include <string.h>

#include "hash_map.h"
#include "large_array.h"
#include "path_tree.h"
#include "sprof/trace_format.h"

#define GROW_LARGE(array, count, capacity) \
    large_array_grow((void **)&(array), (count), (capacity), sizeof *(array))

#define FAMILY_SCAN_MAX 8
#define FAMILY_HASHED PATH_FAMILY_HASHED
/* Nodes after a node that are asked for: about a stack's worth. */
#define RUN_AHEAD 32
#define NODES_PER_LINE (64 / sizeof(struct path_node))
#define NO_CHILD PATH_NO_CHILD

/* Room for capacity nodes in every array beside nodes. */
static bool grow_nodes(struct path_tree *tree, size_t capacity)
{
    if (capacity > FAMILY_HASHED || !GROW_LARGE(tree->nodes, tree->count, capacity) ||
        !GROW_LARGE(tree->parents, tree->count, capacity) ||
        !GROW_LARGE(tree->depths, tree->count, capacity) ||
        !GROW_LARGE(tree->address_indexes, tree->count, capacity) ||
        !GROW_LARGE(tree->samples, tree->count, capacity))
        return false;
    tree->capacity = capacity;
    return true;
}

static bool reserve_nodes(struct path_tree *tree)
{
    return tree->count < tree->capacity ||
           grow_nodes(tree, tree->capacity ? tree->capacity * 2 : 1024);
}

bool path_tree_expect(struct path_tree *tree, size_t nodes)
{
    return nodes <= tree->capacity || grow_nodes(tree, nodes);
}

/* Makes node id, called from parent. */
static void set_node(struct path_tree *tree, uint32_t id, uint64_t address, uint32_t parent,
                     uint16_t depth, uint32_t address_index, uint32_t next_sibling)
{
    tree->nodes[id] = (struct path_node){address, NO_CHILD, next_sibling};
    tree->parents[id] = parent;
    tree->depths[id] = depth;
    tree->address_indexes[id] = address_index;
    tree->samples[id] = (struct path_samples){0, 0};
}

bool path_tree_init(struct path_tree *tree)
{
    memset(tree, 0, sizeof *tree);
    sprof_map_init(&tree->address_index);
    if (!reserve_nodes(tree))
        return false;
    /* The two nodes above the roots. */
    for (uint32_t id = PATH_ROOT; id <= PATH_TRUNCATED; id++)
        set_node(tree, id, 0, PATH_NONE, 0, PATH_NONE, NO_CHILD);
    tree->count = 2;
    return true;
}

void path_tree_free(struct path_tree *tree)
{
    free(tree->nodes);
    free(tree->parents);
    free(tree->depths);
    free(tree->address_indexes);
    free(tree->samples);
    free(tree->family_slots);
    free(tree->addresses);
    sprof_map_free(&tree->address_index);
    free(tree->sampled);
    memset(tree, 0, sizeof *tree);
}

static size_t family_slot(uint32_t parent, uint64_t address, size_t capacity)
{
    return (size_t)sprof_hash64(address ^ (uint64_t)parent * 0x9e3779b97f4a7c15ULL) &
           (capacity - 1);
}

/* The child of parent at address among the hashed families, or PATH_NONE. */
static uint32_t family_find(const struct path_tree *tree, uint32_t parent, uint64_t address)
{
    size_t mask = tree->family_capacity - 1;
    for (size_t at = family_slot(parent, address, tree->family_capacity);;
         at = (at + 1) & mask) {
        uint32_t id = tree->family_slots[at];
        if (id == PATH_NONE || (tree->parents[id] == parent && tree->nodes[id].address == address))
            return id;
    }
}

static void family_put(const struct path_tree *tree, uint32_t *slots, size_t capacity,
                       uint32_t id)
{
    size_t at = family_slot(tree->parents[id], tree->nodes[id].address, capacity);
    while (slots[at] != PATH_NONE)
        at = (at + 1) & (capacity - 1);
    slots[at] = id;
}

static bool family_add(struct path_tree *tree, uint32_t id)
{
    if ((tree->family_count + 1) * 2 > tree->family_capacity) {
        size_t capacity = tree->family_capacity ? tree->family_capacity * 2 : 1024;
        uint32_t *slots = malloc(capacity * sizeof *slots);
        if (!slots)
            return false;
        memset(slots, 0xff, capacity * sizeof *slots); /* PATH_NONE */
        for (size_t i = 0; i < tree->family_capacity; i++) {
            if (tree->family_slots[i] != PATH_NONE)
                family_put(tree, slots, capacity, tree->family_slots[i]);
        }
        free(tree->family_slots);
        tree->family_slots = slots;
        tree->family_capacity = capacity;
    }
    family_put(tree, tree->family_slots, tree->family_capacity, id);
    tree->family_count++;
    return true;
}

static uint32_t address_index(struct path_tree *tree, uint64_t address)
{
    uint32_t index;
    if (sprof_map_get(&tree->address_index, address, &index))
        return index;
    if (!ARRAY_MAKE_ROOM(tree->addresses, tree->address_capacity, tree->address_count))
        return PATH_NONE;
    index = (uint32_t)tree->address_count;
    if (!sprof_map_put(&tree->address_index, address, index))
        return PATH_NONE;
    tree->addresses[tree->address_count++] = address;
    return index;
}

void path_tree_prefetch_first_child(const struct path_tree *tree, uint32_t node)
{
    if (node != PATH_NONE && !(tree->nodes[node].first_child & FAMILY_HASHED))
        __builtin_prefetch(&tree->nodes[tree->nodes[node].first_child]);
}

void path_tree_prefetch_run(const struct path_tree *tree, uint32_t node)
{
    for (size_t ahead = NODES_PER_LINE; ahead < RUN_AHEAD && node + ahead < tree->count;
         ahead += NODES_PER_LINE)
        __builtin_prefetch(&tree->nodes[node + ahead]);
}

bool path_tree_find_child(struct path_tree *tree, uint32_t parent, uint64_t address,
                          uint32_t *child)
{
    uint32_t first = tree->nodes[parent].first_child;
    uint32_t scanned = 0;
    if (first & FAMILY_HASHED) {
        if ((*child = family_find(tree, parent, address)) != PATH_NONE)
            return true;
    } else {
        for (uint32_t id = first; id != NO_CHILD; id = tree->nodes[id].next_sibling, scanned++) {
            if (tree->nodes[id].address == address) {
                *child = id;
                return true;
            }
        }
    }
    *child = PATH_NONE;
    if (tree->depths[parent] == SPROF_STACK_MAX_DEPTH)
        return true; /* deeper than a stack can be: undefined */
    uint32_t index = address_index(tree, address);
    if (index == PATH_NONE || !reserve_nodes(tree))
        return false;
    uint32_t id = (uint32_t)tree->count++;
    set_node(tree, id, address, parent, (uint16_t)(tree->depths[parent] + 1), index,
             first & ~FAMILY_HASHED);
    tree->nodes[parent].first_child = id | (first & FAMILY_HASHED);
    /* A family that outgrows scanning goes into the hash table whole. */
    if (first & FAMILY_HASHED) {
        if (!family_add(tree, id))
            return false;
    } else if (scanned == FAMILY_SCAN_MAX) {
        for (uint32_t member = id; member != NO_CHILD; member = tree->nodes[member].next_sibling) {
            if (!family_add(tree, member))
                return false;
        }
        tree->nodes[parent].first_child |= FAMILY_HASHED;
    }
    *child = id;
    return true;
}

bool path_tree_add_first_samples(struct path_tree *tree, uint32_t node, uint64_t samples,
                                 uint64_t weight_ns)
{
    struct path_samples *s = &tree->samples[node];
    if (!ARRAY_MAKE_ROOM(tree->sampled, tree->sampled_capacity, tree->sampled_count))
        return false;
    tree->sampled[tree->sampled_count++] = node;
    s->samples += samples;
    s->weight_ns += weight_ns;
    return true;
}

/* A first-use key orders (sampled node, place on its stack counted from
 * the leaf): deeper nodes come first within a stack. */
#define DEPTH_BITS 11
_Static_assert(SPROF_STACK_MAX_DEPTH < (1u << DEPTH_BITS) - 1, "depths fit the key");

static uint64_t first_use_key(uint32_t rank, uint32_t depth)
{
    return (uint64_t)rank << DEPTH_BITS | ((1u << DEPTH_BITS) - 1 - depth);
}

void path_tree_first_uses(const struct path_tree *tree, uint32_t *rank, uint64_t *first_use,
                          uint64_t *truncated_first_use)
{
    /* rank[n]: the first sampled stack that passes through n, gathered from
     * the children, which come after n. */
    memset(rank, 0xff, tree->count * sizeof *rank);
    for (size_t i = 0; i < tree->sampled_count; i++)
        rank[tree->sampled[i]] = (uint32_t)i;
    for (size_t n = tree->count; n-- > PATH_TRUNCATED + 1;) {
        if (rank[n] == PATH_NONE)
            continue;
        uint32_t parent = tree->parents[n];
        uint64_t key = first_use_key(rank[n], tree->depths[n]);
        if (key < first_use[tree->address_indexes[n]])
            first_use[tree->address_indexes[n]] = key;
        if (parent == PATH_TRUNCATED) {
            /* The truncation mark is the last frame of its stack. */
            key = first_use_key(rank[n], 0);
            if (key < *truncated_first_use)
                *truncated_first_use = key;
        } else if (parent != PATH_ROOT && rank[n] < rank[parent]) {
            rank[parent] = rank[n];
        }
    }
}

/* A node on the walk's current path. */
struct walk_frame {
    uint32_t next_child;       /* NO_CHILD when all are walked */
    uint32_t function_count;
    const uint32_t *functions; /* of its address, innermost first */
    uint32_t frames_above;     /* functions between it and the root */
    uint32_t innermost;        /* gets self time: its innermost function, or its caller's */
    uint64_t first_on_path;    /* bit i: functions[i] is on the path first here */
    uint64_t samples, weight_ns; /* of its subtree, so far */
};

static void enter(const struct path_tree *tree, const struct path_walk *w, uint32_t node,
                  const struct walk_frame *caller, struct walk_frame *frame)
{
    frame->next_child = tree->nodes[node].first_child & ~FAMILY_HASHED;
    frame->frames_above = caller->frames_above + caller->function_count;
    if (node == PATH_ROOT) {
        frame->functions = NULL;
        frame->function_count = 0;
    } else if (node == PATH_TRUNCATED) {
        frame->functions = &w->truncated_function;
        frame->function_count = w->truncated_function != PATH_NONE;
    } else {
        uint32_t at = w->expansion_at[tree->address_indexes[node]];
        frame->functions = w->expansions + at + 1;
        frame->function_count = w->expansions[at];
    }
    frame->innermost = frame->function_count ? frame->functions[0] : caller->innermost;
    frame->first_on_path = 0;
    for (uint32_t i = frame->function_count; i-- > 0;) {
        if (w->on_path[frame->functions[i]]++ == 0)
            frame->first_on_path |= 1ull << i;
    }
    const struct path_samples *s = &tree->samples[node];
    frame->samples = s->samples;
    frame->weight_ns = s->weight_ns;
    /* A stack without any function counts in no function's figures. */
    if (s->samples && frame->innermost != PATH_NONE) {
        w->functions[frame->innermost].self_samples += s->samples;
        w->functions[frame->innermost].self_weight_ns += s->weight_ns;
    }
}

static void leave(const struct path_walk *w, const struct walk_frame *frame)
{
    for (uint32_t i = 0; i < frame->function_count; i++) {
        struct function *fn = &w->functions[frame->functions[i]];
        w->on_path[frame->functions[i]]--;
        if (frame->samples == 0)
            continue; /* no sampled stack goes through it */
        if (frame->first_on_path >> i & 1) {
            fn->cumulative_samples += frame->samples;
            fn->cumulative_weight_ns += frame->weight_ns;
        }
        uint32_t distance = frame->frames_above + (frame->function_count - 1 - i);
        if (distance < fn->root_distance)
            fn->root_distance = distance;
    }
}

/* Walks the subtree of start, which stands above roots. */
static void walk_from(const struct path_tree *tree, const struct path_walk *w, uint32_t start)
{
    /* The path never holds more than a stack's addresses and start. */
    struct walk_frame path[SPROF_STACK_MAX_DEPTH + 1];
    const struct walk_frame nothing_above = {.next_child = NO_CHILD, .innermost = PATH_NONE};
    enter(tree, w, start, &nothing_above, &path[0]);
    size_t top = 0;
    for (;;) {
        struct walk_frame *frame = &path[top];
        if (frame->next_child != NO_CHILD) {
            uint32_t child = frame->next_child;
            frame->next_child = tree->nodes[child].next_sibling;
            enter(tree, w, child, frame, &path[++top]);
            continue;
        }
        leave(w, frame);
        if (top == 0)
            break;
        path[top - 1].samples += frame->samples;
        path[top - 1].weight_ns += frame->weight_ns;
        top--;
    }
}

void path_tree_add_figures(const struct path_tree *tree, const struct path_walk *walk)
{
    walk_from(tree, walk, PATH_ROOT);
    walk_from(tree, walk, PATH_TRUNCATED);
}
