/* The stacks of one trace file as one tree of distinct paths: every frame
 * table's node maps to the path node of its stack, so the paths that many
 * tables (threads, and a thread's successive tables) define again are one
 * node, and the samples of a stack add up there as the records are read.
 * Function figures are computed on this tree directly, in one depth-first
 * walk; stacks are made only for the views that list them.
 * Not thread-safe; uses malloc. */
#ifndef SPROF_PATH_TREE_H
#define SPROF_PATH_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash_map.h"
#include "profile.h"

/* At most this many functions at one address (inlined ones included): a
 * mask of them fits a uint64_t. */
#define MAX_INLINE_FRAMES 64

#define PATH_NONE UINT32_MAX
/* Node ids: two stand above the roots, the real ones come after them, and
 * a parent's id is smaller than its children's. */
#define PATH_ROOT 0      /* above the roots of whole stacks */
#define PATH_TRUNCATED 1 /* above the roots of truncated stacks: the truncation mark */

/* What finding a child reads; the rest of a node is in arrays beside. */
struct path_node {
    uint64_t address;
    uint32_t first_child, next_sibling;
};

/* Samples of a path node, where samples land (a stack's innermost frame). */
struct path_samples {
    uint64_t samples, weight_ns;
};

struct path_tree {
    struct path_node *nodes;
    size_t count, capacity;
    /* Beside nodes, by node id: */
    uint32_t *parents;
    uint16_t *depths;          /* addresses from the root, itself included */
    uint32_t *address_indexes; /* into addresses */
    struct path_samples *samples;
    /* Node ids of the families too large to scan, by (parent, address). */
    uint32_t *family_slots;
    size_t family_capacity, family_count;
    /* The distinct addresses of the nodes. */
    uint64_t *addresses;
    size_t address_count, address_capacity;
    struct sprof_map address_index;
    /* Sampled nodes in the order of their first sample. */
    uint32_t *sampled;
    size_t sampled_count, sampled_capacity;
};

/* False when out of memory. */
bool path_tree_init(struct path_tree *tree);
void path_tree_free(struct path_tree *tree);
/* Makes room for nodes nodes at once, so that the arrays are not copied
 * as they grow (a copy fills new pages); room never used costs address
 * space only. False when out of memory (the tree unchanged, still usable). */
bool path_tree_expect(struct path_tree *tree, size_t nodes);

/* Set in a node's first_child when its family is in the hash table. */
#define PATH_FAMILY_HASHED 0x80000000u
/* Ends a list of children: PATH_ROOT is nobody's child. */
#define PATH_NO_CHILD PATH_ROOT

/* path_tree_child when the child is not its parent's newest. */
bool path_tree_find_child(struct path_tree *tree, uint32_t parent, uint64_t address,
                          uint32_t *child);

/* Sets *child to the node of address called from parent (PATH_ROOT or
 * PATH_TRUNCATED for a root), made on first use; PATH_NONE when the stack
 * would be deeper than the format allows. False when out of memory. */
static inline bool path_tree_child(struct path_tree *tree, uint32_t parent, uint64_t address,
                                   uint32_t *child)
{
    /* Nearly every node has one child, so the newest one is nearly always
     * the one asked for: checked here, without a call. */
    uint32_t first = tree->nodes[parent].first_child;
    if (first != PATH_NO_CHILD && !(first & PATH_FAMILY_HASHED) &&
        tree->nodes[first].address == address) {
        *child = first;
        return true;
    }
    return path_tree_find_child(tree, parent, address, child);
}

/* Asking the memory early for what lookups will read lets lookups for
 * many stacks wait for it together. Looking up a child of node reads node
 * (path_tree_prefetch), then, once that has come, its first child
 * (path_tree_prefetch_first_child). And a stack's nodes were made one
 * after another, so a stack defined again mostly walks up the ids from
 * where it leaves what was defined already (path_tree_prefetch_run).
 * node may be PATH_NONE. */
static inline void path_tree_prefetch(const struct path_tree *tree, uint32_t node)
{
    if (node != PATH_NONE)
        __builtin_prefetch(&tree->nodes[node]);
}
static inline void path_tree_prefetch_samples(const struct path_tree *tree, uint32_t node)
{
    if (node != PATH_NONE)
        __builtin_prefetch(&tree->samples[node]);
}
void path_tree_prefetch_first_child(const struct path_tree *tree, uint32_t node);
void path_tree_prefetch_run(const struct path_tree *tree, uint32_t node);

/* path_tree_add_samples for a node's first samples. */
bool path_tree_add_first_samples(struct path_tree *tree, uint32_t node, uint64_t samples,
                                 uint64_t weight_ns);

/* Adds samples that landed on node, a real one. False when out of memory.
 * Inline: it runs for every sample entry of a trace. */
static inline bool path_tree_add_samples(struct path_tree *tree, uint32_t node,
                                         uint64_t samples, uint64_t weight_ns)
{
    struct path_samples *s = &tree->samples[node];
    if (s->samples == 0 && samples > 0)
        return path_tree_add_first_samples(tree, node, samples, weight_ns);
    s->samples += samples;
    s->weight_ns += weight_ns;
    return true;
}

/* The order in which making a stack of each sampled node in turn (leaf
 * first) would first meet each address: first_use[a] gets the smallest
 * key of a (PATH_UNUSED if no sampled stack has it), and
 * *truncated_first_use the key of the first truncation mark, last frame of
 * its stack. rank is scratch of tree->count entries. */
#define PATH_UNUSED UINT64_MAX
void path_tree_first_uses(const struct path_tree *tree, uint32_t *rank, uint64_t *first_use,
                          uint64_t *truncated_first_use);

/* What the walk needs beyond the tree. */
struct path_walk {
    /* Functions of each address, innermost (inlined) first: expansions[at]
     * is their count and the functions follow, at = expansion_at[address index]. */
    const uint32_t *expansions;
    const uint32_t *expansion_at;
    uint32_t truncated_function; /* "[truncated stack]", or PATH_NONE */
    struct function *functions;  /* their sampled figures are added to */
    uint32_t *on_path;           /* per function, all 0: scratch */
};

/* Adds the self and cumulative figures and root distances of every sampled
 * stack to walk->functions: self to the innermost function, cumulative once
 * per stack to every function on it, however often it recurses. */
void path_tree_add_figures(const struct path_tree *tree, const struct path_walk *walk);

#endif
