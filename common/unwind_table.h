/* Finds the function that contains an address from an ELF file's unwind
 * tables (.eh_frame_hdr and .eh_frame), for stripped code with no symbol.
 * Not thread-safe; reads only the mapped ELF data. */
#ifndef SPROF_UNWIND_TABLE_H
#define SPROF_UNWIND_TABLE_H

#include <gelf.h>
#include <stdbool.h>
#include <stdint.h>

/* file_address is in the file's own address space (p_vaddr). Returns true
 * and the function's [start, end) when an unwind entry (FDE) covers it. */
bool sprof_unwind_table_function(Elf *elf, uint64_t file_address, uint64_t *start,
                                 uint64_t *end);

#endif
