/* Callgrind's format (valgrind's callgrind/docs/cl-format.xml), read by
 * KCachegrind, QCachegrind and callgrind_annotate: per function its self
 * cost and, per callee, the inclusive cost of the calls, in two events,
 * samples and CPU nanoseconds.
 *
 * Sampled stacks are turned into call costs so that a function's self cost
 * plus its calls' costs equals its cumulative figure in the table, once per
 * sample however it recurses: a sample's cost goes to the leaf function's
 * self, and to the call that each other function on the stack makes from
 * its outermost frame. Valgrind's own callgrind charges every frame of a
 * recursion, which counts the inner calls twice. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hash_map.h"
#include "large_array.h"
#include "report.h"

struct call_cost {
    uint32_t caller, callee;
    uint64_t samples, weight_ns;
};

struct call_costs {
    struct call_cost *items;
    size_t count, capacity;
    struct sprof_map by_pair; /* caller << 32 | callee -> index */
};

static bool add_call(struct call_costs *calls, uint32_t caller, uint32_t callee,
                     const struct logical_stack *stack)
{
    uint64_t key = (uint64_t)caller << 32 | callee;
    uint32_t at;
    if (!sprof_map_get(&calls->by_pair, key, &at)) {
        if (calls->count >= UINT32_MAX ||
            !ARRAY_MAKE_ROOM(calls->items, calls->capacity, calls->count))
            return false;
        at = (uint32_t)calls->count++;
        calls->items[at] = (struct call_cost){caller, callee, 0, 0};
        if (!sprof_map_put(&calls->by_pair, key, at))
            return false;
    }
    calls->items[at].samples += stack->samples;
    calls->items[at].weight_ns += stack->weight_ns;
    return true;
}

static int compare_calls(const void *left, const void *right)
{
    const struct call_cost *a = left, *b = right;
    if (a->caller != b->caller)
        return a->caller < b->caller ? -1 : 1;
    return a->callee < b->callee ? -1 : a->callee > b->callee;
}

/* length bytes of text to the end of the line, control characters shown
 * as '?' (a name with a newline would start a record of its own). Bytes,
 * not put_sanitized's characters: a file name is cut from "file:line". */
static void put_text(FILE *out, const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
    }
}

/* Name compression: "(id) text" the first time, "(id)" after. Ids are
 * per kind; seen[] marks the ones already written. */
static void put_compressed(FILE *out, const char *key, uint32_t id, bool *seen,
                           const char *text, size_t length)
{
    fprintf(out, "%s=(%" PRIu32 ")", key, id + 1);
    if (!seen[id]) {
        seen[id] = true;
        fputc(' ', out);
        /* Valgrind's name for what is not known; readers need some name. */
        if (length)
            put_text(out, text, length);
        else
            fputs("???", out);
    }
    fputc('\n', out);
}

struct names {
    bool *function_seen, *file_seen, *module_seen;
    /* Files cut from "file:line" locations, or modules: one id per text. */
    struct sprof_string_table files;
    bool failed;
};

/* ob=, fl= and fn= (or cob=, cfi=, cfn=) for function f; returns its line. */
static uint64_t put_function(FILE *out, const struct profile *p, struct names *names,
                             uint32_t f, bool called)
{
    const struct function *fn = &p->functions[f];
    const char *module = sprof_string_table_get(&p->strings, fn->module);
    const char *location = sprof_string_table_get(&p->strings, fn->location);
    size_t file_length;
    uint64_t line = location_line(location, &file_length);
    /* Modules by their string ids: the profile interns them. */
    put_compressed(out, called ? "cob" : "ob", fn->module, names->module_seen, module,
                   strlen(module));
    const char *file = line ? location : module;
    size_t length = line ? file_length : strlen(module);
    uint32_t file_id = sprof_string_table_intern(&names->files, file, length);
    if (!file_id)
        names->failed = true;
    else
        put_compressed(out, called ? "cfi" : "fl", file_id - 1, names->file_seen, file, length);
    const char *name = sprof_string_table_get(&p->strings, fn->name);
    put_compressed(out, called ? "cfn" : "fn", f, names->function_seen, name, strlen(name));
    return line;
}

/* Exact calls from caller to callee, where the trace counted them. */
static uint64_t exact_calls(const struct profile *p, uint32_t caller, uint32_t callee)
{
    uint32_t at;
    if (!p->has_call_counts ||
        !sprof_map_get(&p->edge_by_pair, (uint64_t)caller << 32 | callee, &at))
        return 0;
    return p->edges[at].calls;
}

bool print_callgrind(FILE *out, const struct profile *p, char *error, size_t error_size)
{
    size_t functions = p->function_count ? p->function_count : 1;
    size_t strings = (size_t)p->strings.count + 1;
    uint64_t *self_samples = calloc(functions, sizeof *self_samples);
    uint64_t *self_ns = calloc(functions, sizeof *self_ns);
    size_t *last_stack = malloc(functions * sizeof *last_stack);
    bool *listed = calloc(functions, sizeof *listed);
    struct names names;
    memset(&names, 0, sizeof names);
    names.function_seen = calloc(functions, 1);
    names.file_seen = calloc(functions, 1); /* at most one file name per function */
    names.module_seen = calloc(strings, 1);
    sprof_string_table_init(&names.files);
    struct call_costs calls = {0};
    sprof_map_init(&calls.by_pair);
    bool ok = self_samples && self_ns && last_stack && listed && names.function_seen &&
              names.file_seen && names.module_seen;
    for (size_t f = 0; ok && f < p->function_count; f++)
        last_stack[f] = SIZE_MAX;

    for (size_t s = 0; ok && s < p->stack_count; s++) {
        const struct logical_stack *stack = &p->stacks[s];
        if (!stack->samples || !stack->depth)
            continue;
        const uint32_t *frames = p->frames + stack->first_frame;
        uint32_t leaf = frames[0];
        self_samples[leaf] += stack->samples;
        self_ns[leaf] += stack->weight_ns;
        listed[leaf] = true;
        last_stack[leaf] = s;
        /* From the root: each function's outermost frame makes the call. */
        for (uint32_t d = stack->depth; d-- > 1;) {
            uint32_t caller = frames[d];
            listed[caller] = true;
            if (last_stack[caller] == s)
                continue;
            last_stack[caller] = s;
            if (!add_call(&calls, caller, frames[d - 1], stack))
                ok = false;
        }
    }
    if (ok && calls.count)
        qsort(calls.items, calls.count, sizeof *calls.items, compare_calls);

    if (ok) {
        fputs("# callgrind format\nversion: 1\ncreator: sprof-analyze\n", out);
        if (p->process_count) {
            fprintf(out, "pid: %" PRIu32 "\ncmd: ", p->processes[0].pid);
            const char *command = sprof_string_table_get(&p->strings, p->processes[0].command);
            put_text(out, command, strlen(command));
            fputc('\n', out);
        }
        fputs("positions: line\nevent: Samples : Samples\n"
              "event: CPU_ns : CPU time (nanoseconds)\nevents: Samples CPU_ns\n",
              out);
        fprintf(out, "summary: %" PRIu64 " %" PRIu64 "\n", p->total_samples, p->total_weight_ns);
        size_t next_call = 0;
        for (uint32_t f = 0; f < p->function_count; f++) {
            if (!listed[f])
                continue;
            fputc('\n', out);
            uint64_t line = put_function(out, p, &names, f, false);
            if (self_samples[f])
                fprintf(out, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", line, self_samples[f],
                        self_ns[f]);
            while (next_call < calls.count && calls.items[next_call].caller == f) {
                const struct call_cost *c = &calls.items[next_call++];
                uint64_t callee_line = put_function(out, p, &names, c->callee, true);
                /* The call site's line is not recorded: the caller's own. */
                fprintf(out, "calls=%" PRIu64 " %" PRIu64 "\n%" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                        exact_calls(p, f, c->callee), callee_line, line, c->samples,
                        c->weight_ns);
            }
        }
    }
    ok = ok && !names.failed;
    if (!ok)
        snprintf(error, error_size, "out of memory building the callgrind profile");
    free(self_samples);
    free(self_ns);
    free(last_stack);
    free(listed);
    free(names.function_seen);
    free(names.file_seen);
    free(names.module_seen);
    sprof_string_table_free(&names.files);
    free(calls.items);
    sprof_map_free(&calls.by_pair);
    return ok;
}
