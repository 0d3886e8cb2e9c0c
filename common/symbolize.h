/* Names addresses with libdw (elfutils): function, source file and line
 * from DWARF where present, including inlined frames; the ELF symbol table
 * where not. Used by the preload at exit and by the analyzer for traces
 * that hold no symbols, so both name addresses the same way.
 *
 * NOT async-signal-safe (libdw, malloc, file I/O). Not thread-safe. */
#ifndef SPROF_SYMBOLIZE_H
#define SPROF_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sprof_symbolizer;

struct sprof_module_desc {
    const char *path;
    uint64_t load_bias; /* address where the file's vaddr 0 is mapped */
    const uint8_t *build_id;
    size_t build_id_size;
};

struct sprof_frame_desc {
    const char *function; /* linkage name where known; never NULL if named */
    const char *file;     /* may be NULL */
    uint32_t line;
    const char *decl_file; /* may be NULL */
    uint32_t decl_line;
};

/* look_further: whether to search for separate debug info everywhere
 * (/usr/lib/debug, .gnu_debuglink, and debuginfod where DEBUGINFOD_URLS is
 * set). The preload passes false, so a program's exit stays fast and never
 * waits on a network: it then uses only the .gnu_debuglink file found in
 * the module's directory or its .debug/. The analyzer passes true. Returns
 * NULL when out of memory. */
struct sprof_symbolizer *sprof_symbolizer_new(bool look_further);
void sprof_symbolizer_free(struct sprof_symbolizer *symbolizer);

/* What libdw calls when it runs out of memory in the middle of reading
 * DWARF; it must not return. libdw's own ends the process with exit(1),
 * which the preload must not do to the program it profiles. */
typedef void (*sprof_out_of_memory_fn)(void) __attribute__((noreturn));
void sprof_symbolizer_on_out_of_memory(struct sprof_symbolizer *symbolizer,
                                       sprof_out_of_memory_fn handler);

/* Adds a module. Returns true if it can be used; false with a one-line
 * reason in why (file missing, not ELF, build-id differs from the one
 * recorded). Call sprof_symbolizer_lookup only after all modules are added. */
bool sprof_symbolizer_add_module(struct sprof_symbolizer *symbolizer,
                                 const struct sprof_module_desc *module, char *why,
                                 size_t why_size);

/* Optional, before the first lookup: every address that will be looked up,
 * ascending, staying valid until the symbolizer is freed. A module's symbol
 * table is then read once and only the symbols that contain one of them are
 * kept and sorted, instead of the whole table (cc1's 29,000 dynamic symbols
 * were a fifth of a gcc process's exit). Lookups give the same answers
 * either way. */
void sprof_symbolizer_expect(struct sprof_symbolizer *symbolizer, const uint64_t *addresses,
                             size_t count);

/* Fills up to max_frames frames for address, innermost inlined frame first,
 * and sets *flags to SPROF_SYMBOL_DWARF, SPROF_SYMBOL_ELF or
 * SPROF_SYMBOL_UNWIND_TABLE (a stripped function named by its start). Returns the
 * number of frames, 0 if the address cannot be named. Strings stay valid
 * until the symbolizer is freed. */
int sprof_symbolizer_lookup(struct sprof_symbolizer *symbolizer, uint64_t address,
                            struct sprof_frame_desc *frames, int max_frames,
                            uint16_t *flags);

#endif
