/* libsprof-names.so: at exit, names every address the trace's stacks hold
 * (read back from the trace itself, since the threads' stack tables are
 * bounded), so the trace can be read anywhere. Uses libdw through
 * common/symbolize.c, the same code the analyzer uses for traces that hold no
 * symbols. libsprof.so loads this library only then (exit_names.h).
 * NOT async-signal-safe. */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "exit_names.h"
#include "module_list.h"
#include "perf_map.h"
#include "sprof/trace_format.h"
#include "string_table.h"
#include "symbolize.h"
#include "trace_codec.h"
#include "trace_reader.h"
#include "varint.h"

#define MAX_INLINE_FRAMES 64

struct symbol_writer {
    struct sprof_encoder *enc;
    struct sprof_string_table strings;
    uint32_t strings_written;
    struct sprof_string_table chains; /* CHAIN keys: module, flags, frames */
    struct sprof_encoder names;       /* the open ADDRESS_NAMES payload */
    uint64_t previous_address;
    /* The last chain and what it was made of: neighbouring addresses are
     * mostly in one function, named by the very same strings. */
    uint32_t last_chain, last_module;
    uint16_t last_flags;
    int last_count;
    struct sprof_frame_desc last_frames[MAX_INLINE_FRAMES];
};

static bool same_as_last_chain(const struct symbol_writer *w, uint32_t module_id,
                               const struct sprof_frame_desc *frames, int count, uint16_t flags)
{
    if (w->last_chain == 0 || module_id != w->last_module || flags != w->last_flags ||
        count != w->last_count)
        return false;
    for (int i = 0; i < count; i++) {
        const struct sprof_frame_desc *a = &frames[i], *b = &w->last_frames[i];
        if (a->function != b->function || a->file != b->file || a->decl_file != b->decl_file ||
            a->decl_line != b->decl_line)
            return false;
    }
    return true;
}

static uint32_t string_id(struct symbol_writer *w, const char *text)
{
    if (!text || !*text)
        return SPROF_STRING_NONE;
    uint32_t id = sprof_string_table_intern(&w->strings, text, strlen(text));
    while (w->strings_written < w->strings.count) {
        uint32_t next = ++w->strings_written;
        const char *s = sprof_string_table_get(&w->strings, next);
        sprof_encoder_begin_record(w->enc, SPROF_REC_STRING);
        sprof_encoder_u32(w->enc, next);
        sprof_encoder_bytes(w->enc, s, strlen(s));
        sprof_encoder_end_record(w->enc);
    }
    return id;
}

/* The chain id for (module, flags, frames), writing its CHAIN record when
 * new; 0 when out of memory. */
static uint32_t chain_id(struct symbol_writer *w, uint32_t module_id,
                         const struct sprof_frame_desc *frames, int count, uint16_t flags)
{
    if (same_as_last_chain(w, module_id, frames, count, flags))
        return w->last_chain;
    uint32_t key[3 + 4 * MAX_INLINE_FRAMES];
    size_t length = 0;
    key[length++] = module_id;
    key[length++] = flags;
    key[length++] = (uint32_t)count;
    for (int i = 0; i < count; i++) {
        key[length++] = string_id(w, frames[i].function);
        key[length++] = string_id(w, frames[i].file);
        key[length++] = string_id(w, frames[i].decl_file);
        key[length++] = frames[i].decl_line;
    }
    uint32_t known = w->chains.count;
    uint32_t id = sprof_string_table_intern(&w->chains, (const char *)key, length * sizeof *key);
    if (id != 0) {
        w->last_chain = id;
        w->last_module = module_id;
        w->last_flags = flags;
        w->last_count = count;
        memcpy(w->last_frames, frames, (size_t)count * sizeof *frames);
    }
    if (id == 0 || id <= known)
        return id;
    sprof_encoder_begin_record(w->enc, SPROF_REC_CHAIN);
    sprof_encoder_u32(w->enc, id);
    sprof_encoder_u32(w->enc, module_id);
    sprof_encoder_u16(w->enc, (uint16_t)count);
    sprof_encoder_u16(w->enc, flags);
    for (size_t i = 3; i < length; i++)
        sprof_encoder_varint(w->enc, key[i]);
    sprof_encoder_end_record(w->enc);
    return id;
}

/* ADDRESS_NAMES records are closed at this size, well under the limit. */
#define NAMES_RECORD_BYTES (64 * 1024)

static void end_names_record(struct symbol_writer *w)
{
    if (w->names.size == 0)
        return;
    sprof_encoder_begin_record(w->enc, SPROF_REC_ADDRESS_NAMES);
    sprof_encoder_bytes(w->enc, w->names.data, w->names.size);
    sprof_encoder_end_record(w->enc);
    w->names.size = 0;
    w->previous_address = 0;
}

static void write_name(struct symbol_writer *w, uint64_t address, uint32_t module_id,
                       const struct sprof_frame_desc *frames, int count, uint16_t flags)
{
    uint32_t chain = chain_id(w, module_id, frames, count, flags);
    if (chain == 0)
        return;
    sprof_encoder_varint(&w->names, address - w->previous_address);
    sprof_encoder_varint(&w->names, chain);
    for (int i = 0; i < count; i++)
        sprof_encoder_varint(&w->names, frames[i].line);
    w->previous_address = address;
    if (w->names.size >= NAMES_RECORD_BYTES)
        end_names_record(w);
}

static int compare_addresses(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Ascending, a byte at a time from the lowest (LSD radix sort), skipping
 * the bytes all addresses share (most of their high ones): qsort's call per
 * comparison cost 8% of cc1's exit. */
static void sort_addresses(uint64_t *addresses, size_t count)
{
    uint64_t *spare = malloc(count * sizeof *spare + 1);
    if (!spare) {
        qsort(addresses, count, sizeof *addresses, compare_addresses);
        return;
    }
    uint64_t *from = addresses, *to = spare;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t start[257] = {0};
        for (size_t i = 0; i < count; i++)
            start[((from[i] >> shift) & 0xff) + 1]++;
        if (count > 0 && start[((from[0] >> shift) & 0xff) + 1] == count)
            continue;
        for (size_t b = 1; b <= 256; b++)
            start[b] += start[b - 1];
        for (size_t i = 0; i < count; i++)
            to[start[(from[i] >> shift) & 0xff]++] = from[i];
        uint64_t *swap = from;
        from = to;
        to = swap;
    }
    if (from != addresses)
        memcpy(addresses, from, count * sizeof *addresses);
    free(spare);
}

/* The functions and call sites of a CALL_COUNTS record. */
static void collect_call_addresses(const struct sprof_record *record, struct sprof_map *addresses)
{
    struct sprof_decoder dec;
    sprof_decoder_init(&dec, record->payload, record->size);
    sprof_decoder_u32(&dec);
    sprof_decoder_u32(&dec);
    uint32_t kind = sprof_decoder_u32(&dec);
    uint32_t count = sprof_decoder_u32(&dec);
    sprof_decoder_u64(&dec);
    for (uint32_t i = 0; i < count && dec.ok; i++) {
        uint64_t first = sprof_decoder_u64(&dec);
        uint64_t second = sprof_decoder_u64(&dec);
        sprof_decoder_u64(&dec);
        if (!dec.ok)
            break;
        sprof_map_put(addresses, first, 1);
        if (kind == SPROF_CALLS_EDGES)
            sprof_map_put(addresses, second, 1);
    }
}

/* The addresses of a FRAMES record's nodes. */
static void collect_node_addresses(const struct sprof_record *record,
                                   struct sprof_map *addresses)
{
    struct sprof_decoder dec;
    sprof_decoder_init(&dec, record->payload, record->size);
    sprof_decoder_varint(&dec); /* table */
    sprof_decoder_varint(&dec); /* first node */
    uint64_t address = 0;
    while (dec.ok && sprof_decoder_remaining(&dec) > 0) {
        sprof_decoder_varint(&dec);
        address += (uint64_t)sprof_unzigzag(sprof_decoder_varint(&dec));
        if (dec.ok)
            sprof_map_put(addresses, address, 1);
    }
}

/* Every address of every FRAMES, STACK and CALL_COUNTS record in the trace. */
static bool collect_addresses(const char *path, struct sprof_map *addresses)
{
    struct sprof_reader reader;
    if (sprof_reader_open(&reader, path) != 0) {
        sprof_reader_close(&reader);
        return false;
    }
    struct sprof_record record;
    while (sprof_reader_next(&reader, &record) == SPROF_READ_RECORD) {
        if (record.type == SPROF_REC_CALL_COUNTS) {
            collect_call_addresses(&record, addresses);
            continue;
        }
        if (record.type == SPROF_REC_FRAMES) {
            collect_node_addresses(&record, addresses);
            continue;
        }
        if (record.type != SPROF_REC_STACK)
            continue;
        struct sprof_decoder dec;
        sprof_decoder_init(&dec, record.payload, record.size);
        sprof_decoder_u32(&dec);
        uint16_t depth = sprof_decoder_u16(&dec);
        sprof_decoder_u16(&dec);
        for (uint16_t i = 0; i < depth && dec.ok; i++) {
            uint64_t address = sprof_decoder_u64(&dec);
            if (dec.ok)
                sprof_map_put(addresses, address, 1);
        }
    }
    sprof_reader_close(&reader);
    return true;
}

static void append_when_large(struct sprof_encoder *enc, bool force,
                              bool (*append)(const void *bytes, size_t size))
{
    if (enc->size > 0 && (force || enc->size > 256 * 1024)) {
        if (!enc->failed)
            append(enc->data, enc->size);
        enc->size = 0;
        enc->failed = false;
    }
}

__attribute__((visibility("default"))) sprof_names_write_fn sprof_names_write;

void sprof_names_write(const char *path, const struct sprof_module_list *modules,
                       bool (*append)(const void *bytes, size_t size),
                       void (*out_of_memory)(void) __attribute__((noreturn)))
{
    struct sprof_map addresses;
    sprof_map_init(&addresses);
    if (!collect_addresses(path, &addresses) || addresses.count == 0) {
        sprof_map_free(&addresses);
        return;
    }
    struct sprof_symbolizer *symbolizer = sprof_symbolizer_new(false);
    if (!symbolizer) {
        sprof_map_free(&addresses);
        return;
    }
    sprof_symbolizer_on_out_of_memory(symbolizer, out_of_memory);
    for (size_t i = 0; i < modules->count; i++) {
        const struct sprof_module *m = &modules->modules[i];
        if (!m->has_file)
            continue;
        struct sprof_module_desc desc = {
            .path = m->path,
            .load_bias = m->load_bias,
            .build_id = m->build_id,
            .build_id_size = m->build_id_size,
        };
        char why[256];
        sprof_symbolizer_add_module(symbolizer, &desc, why, sizeof why);
    }

    struct sprof_encoder enc;
    sprof_encoder_init(&enc);
    struct symbol_writer w = {.enc = &enc};
    sprof_string_table_init(&w.strings);
    sprof_string_table_init(&w.chains);
    sprof_encoder_init(&w.names);
    /* Ascending, so each entry stores a small difference. */
    uint64_t *sorted = malloc(addresses.count * sizeof *sorted);
    size_t sorted_count = 0;
    for (size_t i = 0; sorted && i < addresses.capacity; i++) {
        if (addresses.slots[i].used)
            sorted[sorted_count++] = addresses.slots[i].key;
    }
    sort_addresses(sorted, sorted_count);
    if (sorted)
        sprof_symbolizer_expect(symbolizer, sorted, sorted_count);
    /* Code in no module is a JIT's: named from its perf map, if it wrote one. */
    struct perf_map jit_names = {0};
    bool jit_names_read = false;
    struct sprof_frame_desc frames[MAX_INLINE_FRAMES];
    for (size_t i = 0; i < sorted_count; i++) {
        uint64_t address = sorted[i];
        const struct sprof_module *m = sprof_module_list_find(modules, address);
        uint16_t flags = 0;
        int count = 0;
        if (m && m->has_file) {
            count = sprof_symbolizer_lookup(symbolizer, address, frames, MAX_INLINE_FRAMES, &flags);
        } else if (m) {
            /* The vDSO has no file; the loader knows its exported names. */
            Dl_info info;
            const ElfW(Sym) *sym = NULL;
            if (dladdr1((void *)(uintptr_t)address, &info, (void **)&sym, RTLD_DL_SYMENT) &&
                info.dli_sname && sym &&
                address - (uint64_t)(uintptr_t)info.dli_saddr < (uint64_t)sym->st_size) {
                memset(&frames[0], 0, sizeof frames[0]);
                frames[0].function = info.dli_sname;
                flags = SPROF_SYMBOL_ELF;
                count = 1;
            }
        } else {
            if (!jit_names_read) {
                perf_map_read_own(&jit_names);
                jit_names_read = true;
            }
            const char *name = perf_map_find(&jit_names, address);
            if (name) {
                memset(&frames[0], 0, sizeof frames[0]);
                frames[0].function = name;
                flags = SPROF_SYMBOL_ELF;
                count = 1;
            }
        }
        write_name(&w, address, m ? m->id : SPROF_MODULE_NONE, frames, count, flags);
        append_when_large(&enc, false, append);
    }
    end_names_record(&w);
    append_when_large(&enc, true, append);
    free(sorted);
    perf_map_free(&jit_names);
    sprof_encoder_free(&enc);
    sprof_encoder_free(&w.names);
    sprof_string_table_free(&w.strings);
    sprof_string_table_free(&w.chains);
    sprof_symbolizer_free(symbolizer);
    sprof_map_free(&addresses);
}
