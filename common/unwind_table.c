#include "unwind_table.h"

#include <string.h>

/* DWARF exception-header pointer encodings (DW_EH_PE_*). */
#define PE_OMIT 0xff
#define PE_FORMAT 0x0f
#define PE_APPLY 0x70
#define PE_ABSPTR 0x00
#define PE_ULEB128 0x01
#define PE_UDATA2 0x02
#define PE_UDATA4 0x03
#define PE_UDATA8 0x04
#define PE_SLEB128 0x09
#define PE_SDATA2 0x0a
#define PE_SDATA4 0x0b
#define PE_SDATA8 0x0c
#define PE_PCREL 0x10
#define PE_DATAREL 0x30

struct section {
    const uint8_t *data;
    size_t size;
    uint64_t address;
};

struct cursor {
    const uint8_t *at, *end;
    bool ok;
};

static uint64_t read_bytes(struct cursor *c, int bytes)
{
    if (!c->ok || c->end - c->at < bytes) {
        c->ok = false;
        return 0;
    }
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value |= (uint64_t)c->at[i] << (8 * i);
    c->at += bytes;
    return value;
}

static uint64_t read_uleb(struct cursor *c)
{
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint64_t byte = read_bytes(c, 1);
        value |= (byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return value;
    }
    c->ok = false;
    return 0;
}

static int64_t read_sleb(struct cursor *c)
{
    int64_t value = 0;
    int shift = 0;
    uint64_t byte;
    do {
        byte = read_bytes(c, 1);
        value |= (int64_t)((byte & 0x7f) << shift);
        shift += 7;
    } while ((byte & 0x80) && shift < 64 && c->ok);
    if (shift < 64 && (byte & 0x40))
        value |= -((int64_t)1 << shift);
    return value;
}

/* Reads an encoded pointer at c; here is the address of c->at in memory. */
static uint64_t read_encoded(struct cursor *c, uint8_t encoding, uint64_t here,
                             uint64_t data_base)
{
    uint64_t value;
    switch (encoding & PE_FORMAT) {
    case PE_ABSPTR: value = read_bytes(c, 8); break;
    case PE_ULEB128: value = read_uleb(c); break;
    case PE_UDATA2: value = read_bytes(c, 2); break;
    case PE_UDATA4: value = read_bytes(c, 4); break;
    case PE_UDATA8: value = read_bytes(c, 8); break;
    case PE_SLEB128: value = (uint64_t)read_sleb(c); break;
    case PE_SDATA2: value = (uint64_t)(int64_t)(int16_t)read_bytes(c, 2); break;
    case PE_SDATA4: value = (uint64_t)(int64_t)(int32_t)read_bytes(c, 4); break;
    case PE_SDATA8: value = read_bytes(c, 8); break;
    default: c->ok = false; return 0;
    }
    switch (encoding & PE_APPLY) {
    case 0: break;
    case PE_PCREL: value += here; break;
    case PE_DATAREL: value += data_base; break;
    default: c->ok = false;
    }
    return value;
}

static bool find_section(Elf *elf, const char *name, struct section *out)
{
    size_t strndx;
    if (elf_getshdrstrndx(elf, &strndx) != 0)
        return false;
    for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
        GElf_Shdr shdr;
        if (!gelf_getshdr(scn, &shdr) || shdr.sh_type == SHT_NOBITS)
            continue;
        const char *section_name = elf_strptr(elf, strndx, shdr.sh_name);
        if (!section_name || strcmp(section_name, name) != 0)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (!data || !data->d_buf)
            return false;
        out->data = data->d_buf;
        out->size = data->d_size;
        out->address = shdr.sh_addr;
        return true;
    }
    return false;
}

/* The FDE's pc range, given its address; parses its CIE for the encoding. */
static bool fde_range(const struct section *eh_frame, uint64_t fde_address, uint64_t *start,
                      uint64_t *end)
{
    if (fde_address < eh_frame->address || fde_address - eh_frame->address >= eh_frame->size)
        return false;
    const uint8_t *base = eh_frame->data;
    struct cursor c = {base + (fde_address - eh_frame->address), base + eh_frame->size, true};
    uint64_t length = read_bytes(&c, 4);
    if (length == 0 || length == 0xffffffffu)
        return false; /* terminator, or 64-bit DWARF: not used in .eh_frame */
    const uint8_t *cie_pointer_at = c.at;
    uint64_t cie_offset = read_bytes(&c, 4);
    if (!c.ok || cie_offset == 0 || cie_offset > (uint64_t)(cie_pointer_at - base))
        return false;
    /* The CIE: find the 'R' augmentation, the FDE pointer encoding. */
    struct cursor cie = {cie_pointer_at - cie_offset, base + eh_frame->size, true};
    uint64_t cie_length = read_bytes(&cie, 4);
    if (cie_length == 0 || cie_length == 0xffffffffu || read_bytes(&cie, 4) != 0)
        return false;
    uint8_t version = (uint8_t)read_bytes(&cie, 1);
    const char *augmentation = (const char *)cie.at;
    size_t augmentation_length = strnlen(augmentation, (size_t)(cie.end - cie.at));
    cie.at += augmentation_length + 1;
    if (cie.at > cie.end || augmentation[0] != 'z')
        return false;
    read_uleb(&cie); /* code alignment */
    read_sleb(&cie); /* data alignment */
    if (version == 1)
        read_bytes(&cie, 1);
    else
        read_uleb(&cie);
    read_uleb(&cie); /* augmentation data length */
    uint8_t encoding = PE_ABSPTR;
    for (size_t i = 1; i < augmentation_length && cie.ok; i++) {
        switch (augmentation[i]) {
        case 'R': encoding = (uint8_t)read_bytes(&cie, 1); break;
        case 'L': read_bytes(&cie, 1); break;
        case 'P': {
            uint8_t personality = (uint8_t)read_bytes(&cie, 1);
            read_encoded(&cie, personality & 0x7f, 0, 0);
            break;
        }
        case 'S': case 'B': break;
        default: return false;
        }
    }
    if (!cie.ok || encoding == PE_OMIT)
        return false;
    uint64_t here = eh_frame->address + (uint64_t)(c.at - base);
    *start = read_encoded(&c, encoding, here, 0);
    uint64_t range = read_encoded(&c, encoding & PE_FORMAT, 0, 0);
    *end = *start + range;
    return c.ok && range > 0;
}

bool sprof_unwind_table_open(Elf *elf, struct sprof_unwind_table *table)
{
    struct section hdr, eh_frame;
    if (!find_section(elf, ".eh_frame_hdr", &hdr) || !find_section(elf, ".eh_frame", &eh_frame))
        return false;
    struct cursor c = {hdr.data, hdr.data + hdr.size, true};
    uint8_t version = (uint8_t)read_bytes(&c, 1);
    uint8_t frame_encoding = (uint8_t)read_bytes(&c, 1);
    uint8_t count_encoding = (uint8_t)read_bytes(&c, 1);
    uint8_t table_encoding = (uint8_t)read_bytes(&c, 1);
    /* The sorted search table: what every common linker writes. */
    if (!c.ok || version != 1 || table_encoding != (PE_DATAREL | PE_SDATA4) ||
        frame_encoding == PE_OMIT || count_encoding == PE_OMIT)
        return false;
    read_encoded(&c, frame_encoding, hdr.address + 4, hdr.address);
    uint64_t count = read_encoded(&c, count_encoding, hdr.address + 8, hdr.address);
    if (!c.ok || count == 0 || count > (uint64_t)(c.end - c.at) / 8)
        return false;
    *table = (struct sprof_unwind_table){
        .table = c.at,
        .count = count,
        .hdr_address = hdr.address,
        .eh_frame = eh_frame.data,
        .eh_frame_size = eh_frame.size,
        .eh_frame_address = eh_frame.address,
    };
    return true;
}

static uint64_t table_word(const struct sprof_unwind_table *table, uint64_t index, int word)
{
    struct cursor e = {table->table + 8 * index + 4 * word, table->table + 8 * table->count, true};
    return table->hdr_address + (uint64_t)(int64_t)(int32_t)read_bytes(&e, 4);
}

bool sprof_unwind_table_find(const struct sprof_unwind_table *table, uint64_t address,
                             uint64_t *start, uint64_t *end)
{
    /* The last entry whose initial location is <= address. */
    uint64_t low = 0, high = table->count;
    while (high - low > 1) {
        uint64_t middle = low + (high - low) / 2;
        if (table_word(table, middle, 0) <= address)
            low = middle;
        else
            high = middle;
    }
    uint64_t fde = table_word(table, low, 1);
    struct section eh_frame = {table->eh_frame, table->eh_frame_size, table->eh_frame_address};
    return fde_range(&eh_frame, fde, start, end) && *start <= address && address < *end;
}

bool sprof_unwind_table_function(Elf *elf, uint64_t address, uint64_t *start, uint64_t *end)
{
    struct sprof_unwind_table table;
    return sprof_unwind_table_open(elf, &table) &&
           sprof_unwind_table_find(&table, address, start, end);
}
