/* Finds the function that contains an address from an ELF file's unwind
 * tables (.eh_frame_hdr and .eh_frame), for stripped code with no symbol.
 * Not thread-safe; reads only the mapped ELF data. */
#ifndef SPROF_UNWIND_TABLE_H
#define SPROF_UNWIND_TABLE_H

#include <gelf.h>
#include <stdbool.h>
#include <stdint.h>

/* An ELF file's unwind search table (.eh_frame_hdr) and .eh_frame, located
 * once: finding them walks every section header and compares its name,
 * which cost more than the search itself when done per address. Points into
 * the Elf's data: valid while the Elf is. */
struct sprof_unwind_table {
    const uint8_t *table; /* sorted (initial location, FDE) pairs, 8 bytes each */
    uint64_t count;
    uint64_t hdr_address; /* the table's entries are relative to this */
    const uint8_t *eh_frame;
    size_t eh_frame_size;
    uint64_t eh_frame_address;
};

/* Locates elf's table. Returns false if it has none this reader handles
 * (no .eh_frame_hdr, or one without the sorted search table). */
bool sprof_unwind_table_open(Elf *elf, struct sprof_unwind_table *table);

/* file_address is in the file's own address space (p_vaddr). Returns true
 * and the function's [start, end) when an unwind entry (FDE) covers it. */
bool sprof_unwind_table_find(const struct sprof_unwind_table *table, uint64_t file_address,
                             uint64_t *start, uint64_t *end);

/* Both in one call: for a single address. */
bool sprof_unwind_table_function(Elf *elf, uint64_t file_address, uint64_t *start,
                                 uint64_t *end);

#endif
