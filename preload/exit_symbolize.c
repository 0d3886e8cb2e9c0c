/* At exit, names every address the trace's stacks hold (read back from the
 * trace itself, since the threads' stack tables are bounded), so the trace can be
 * read anywhere. Uses libdw through common/symbolize.c, the same code the
 * analyzer uses for traces that hold no symbols. NOT async-signal-safe. */
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "module_list.h"
#include "profiler.h"
#include "sample_handler.h"
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
};

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

static void write_symbol(struct symbol_writer *w, uint64_t address, uint32_t module_id,
                         const struct sprof_frame_desc *frames, int count, uint16_t flags)
{
    uint32_t ids[MAX_INLINE_FRAMES][3];
    for (int i = 0; i < count; i++) {
        ids[i][0] = string_id(w, frames[i].function);
        ids[i][1] = string_id(w, frames[i].file);
        ids[i][2] = string_id(w, frames[i].decl_file);
    }
    sprof_encoder_begin_record(w->enc, SPROF_REC_SYMBOL);
    sprof_encoder_u64(w->enc, address);
    sprof_encoder_u32(w->enc, module_id);
    sprof_encoder_u16(w->enc, (uint16_t)count);
    sprof_encoder_u16(w->enc, flags);
    for (int i = 0; i < count; i++) {
        sprof_encoder_u32(w->enc, ids[i][0]);
        sprof_encoder_u32(w->enc, ids[i][1]);
        sprof_encoder_u32(w->enc, frames[i].line);
        sprof_encoder_u32(w->enc, ids[i][2]);
        sprof_encoder_u32(w->enc, frames[i].decl_line);
    }
    sprof_encoder_end_record(w->enc);
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
    sprof_decoder_u32(&dec);
    sprof_decoder_u32(&dec);
    uint32_t count = sprof_decoder_u32(&dec);
    sprof_decoder_u32(&dec);
    uint64_t address = 0;
    for (uint32_t i = 0; i < count && dec.ok; i++) {
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

static void append_when_large(struct sprof_encoder *enc, bool force)
{
    if (enc->size > 0 && (force || enc->size > 256 * 1024)) {
        if (!enc->failed)
            sprof_trace_append(enc->data, enc->size);
        enc->size = 0;
        enc->failed = false;
    }
}

void sprof_symbolize_trace(const char *path, const struct sprof_module_list *modules)
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
    struct sprof_frame_desc frames[MAX_INLINE_FRAMES];
    for (size_t i = 0; i < addresses.capacity; i++) {
        if (!addresses.slots[i].used)
            continue;
        uint64_t address = addresses.slots[i].key;
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
        }
        write_symbol(&w, address, m ? m->id : SPROF_MODULE_NONE, frames, count, flags);
        append_when_large(&enc, false);
    }
    append_when_large(&enc, true);
    sprof_encoder_free(&enc);
    sprof_string_table_free(&w.strings);
    sprof_symbolizer_free(symbolizer);
    sprof_map_free(&addresses);
}
