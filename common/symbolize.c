#include "symbolize.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <gelf.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array_room.h"
#include "hash_map.h"
#include "sorted_ranges.h"
#include "sprof/trace_format.h"
#include "string_table.h"
#include "unwind_table.h"

/* A compilation unit's address range, from its DW_AT_ranges or low/high pc. */
struct unit_range {
    uint64_t low, high; /* low first: sorted_ranges.h */
    size_t unit;        /* index in module_symbols.units */
};
_Static_assert(offsetof(struct unit_range, low) == 0, "start first");

/* A function symbol of a module, sorted by start. */
struct function_symbol {
    uint64_t start, end;
    const char *name;
    bool sizeless; /* end was made up: the next symbol's start */
};

/* A function's address range in a unit (a function with several ranges has
 * several), with the function's entry. */
struct function_range {
    uint64_t low, high; /* low first: sorted_ranges.h */
    size_t order;       /* the function's place in the unit: aliases share a range */
    Dwarf_Die function;
};
_Static_assert(offsetof(struct function_range, low) == 0, "start first");

/* A unit's functions by address, made on the first address named in it:
 * dwarf_getscopes tests every function of the unit against each address
 * (0.14 ms an address in a unit of 3000 functions, 0.4 s at the exit of a
 * run of 3000 samples). */
struct unit_functions {
    Dwarf *dwarf; /* whose unit: offsets of a split unit's file may repeat */
    struct function_range *ranges; /* by low */
    uint64_t *reach;               /* reach[i]: the highest high of ranges[0..i] */
    size_t count;
};

/* Per module: its function symbols, sorted once, because
 * dwfl_module_addrinfo scans the whole symbol table on every call (1.4 s
 * at the exit of one gcc compile before this). */
struct module_symbols {
    Dwfl_Module *module;
    struct function_symbol *symbols;
    size_t count;
    /* Its unwind table, located on the first address it must name. */
    enum { UNWIND_UNKNOWN, UNWIND_READY, UNWIND_NONE } unwind_state;
    struct sprof_unwind_table unwind;
    /* The stripped function named last: addresses come in ascending order,
     * so the next one is often in it too. */
    uint64_t unnamed_start, unnamed_end;
    const char *unnamed_name;
    /* Its units by address, made when libdw finds no unit for an address:
     * libdw 0.188 finds units only through .debug_aranges, which clang does
     * not write by default. */
    enum { UNITS_UNKNOWN, UNITS_READY, UNITS_NONE } units_state;
    Dwarf_Die *units;
    struct unit_range *unit_ranges;
    size_t unit_range_count;
    /* Units' function indexes, by the unit's offset. */
    struct sprof_map unit_function_index;
    struct unit_functions *unit_functions;
    size_t unit_function_count, unit_function_capacity;
};

struct sprof_symbolizer {
    Dwfl *dwfl;
    struct module_symbols *modules;
    size_t module_count;
    struct sprof_string_table names; /* names made up here, kept until freed */
    Dwfl_Callbacks callbacks;
    bool reporting; /* between dwfl_report_begin and dwfl_report_end */
    /* The addresses sprof_symbolizer_expect announced, ascending. */
    const uint64_t *expected;
    size_t expected_count;
    sprof_out_of_memory_fn out_of_memory; /* libdw's handler, for each Dwarf */
};

void sprof_symbolizer_on_out_of_memory(struct sprof_symbolizer *s, sprof_out_of_memory_fn handler)
{
    s->out_of_memory = handler;
}

/* The module's DWARF (and its dwz file's) report running out of memory to
 * the handler set, before anything is read from them. */
static void give_out_of_memory_handler(struct sprof_symbolizer *s, Dwfl_Module *mod)
{
    if (!s->out_of_memory)
        return;
    Dwarf_Addr bias;
    Dwarf *dwarf = dwfl_module_getdwarf(mod, &bias);
    if (!dwarf)
        return;
    dwarf_new_oom_handler(dwarf, s->out_of_memory);
    Dwarf *alternate = dwarf_getalt(dwarf);
    if (alternate)
        dwarf_new_oom_handler(alternate, s->out_of_memory);
}

void sprof_symbolizer_expect(struct sprof_symbolizer *s, const uint64_t *addresses, size_t count)
{
    s->expected = addresses;
    s->expected_count = count;
}

/* The first announced address at or after value, searching [low, high). */
static size_t first_expected(const struct sprof_symbolizer *s, size_t low, size_t high,
                             uint64_t value)
{
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (s->expected[middle] < value)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

/* Where to start searching the announced addresses, by page of a module's
 * code: a module's symbols are looked up in a few steps each, not in a
 * search over every address (a tenth of cc1's exit). */
struct expected_pages {
    uint64_t low, high; /* the module's addresses */
    uint32_t *first;    /* first[p]: first announced address in or after page p */
};

#define EXPECTED_PAGE_SHIFT 12
#define EXPECTED_MAX_PAGES ((size_t)1 << 20)

/* Leaves index->first NULL (search everything) for a module too large, or
 * without memory. */
static void index_expected_pages(const struct sprof_symbolizer *s, Dwfl_Module *mod,
                                 struct expected_pages *index)
{
    Dwarf_Addr low, high;
    dwfl_module_info(mod, NULL, &low, &high, NULL, NULL, NULL, NULL);
    index->first = NULL;
    if (high <= low || ((high - low) >> EXPECTED_PAGE_SHIFT) >= EXPECTED_MAX_PAGES ||
        s->expected_count > UINT32_MAX)
        return;
    index->low = low;
    index->high = high;
    size_t pages = ((high - low) >> EXPECTED_PAGE_SHIFT) + 1;
    index->first = malloc((pages + 1) * sizeof *index->first);
    if (!index->first)
        return;
    size_t at = first_expected(s, 0, s->expected_count, low);
    for (size_t page = 0; page <= pages; page++) {
        uint64_t page_start = low + ((uint64_t)page << EXPECTED_PAGE_SHIFT);
        while (at < s->expected_count && s->expected[at] < page_start)
            at++;
        index->first[page] = (uint32_t)at;
    }
}

/* Whether an announced address lies in [start, end). */
static bool expects_within(const struct sprof_symbolizer *s, const struct expected_pages *index,
                           uint64_t start, uint64_t end)
{
    size_t at;
    if (index->first && start >= index->low && start < index->high) {
        size_t page = (start - index->low) >> EXPECTED_PAGE_SHIFT;
        at = first_expected(s, index->first[page], index->first[page + 1], start);
    } else {
        at = first_expected(s, 0, s->expected_count, start);
    }
    return at < s->expected_count && s->expected[at] < end;
}

/* The preload's exit uses separate debug info only where a build that
 * splits off its own left it: the file .gnu_debuglink names, in the
 * module's directory or its .debug/. Searching /usr/lib/debug (libc's
 * there cost about 0.1 s per process) would slow every profiled program's
 * exit, and a debuginfod download could stall it: the analyzer looks
 * further. */
static bool debuglink_beside(const char *file_name, const char *debuglink_file)
{
    if (!file_name || !debuglink_file || !*debuglink_file || strchr(debuglink_file, '/'))
        return false;
    const char *slash = strrchr(file_name, '/');
    int directory_length = slash ? (int)(slash - file_name) : 1;
    const char *directory = slash ? file_name : ".";
    char path[4096];
    for (int i = 0; i < 2; i++) {
        int length = snprintf(path, sizeof path, "%.*s/%s%s", directory_length, directory,
                              i ? ".debug/" : "", debuglink_file);
        if (length > 0 && (size_t)length < sizeof path && access(path, R_OK) == 0)
            return true;
    }
    return false;
}

static int debuginfo_beside(Dwfl_Module *mod, void **userdata, const char *modname,
                            GElf_Addr base, const char *file_name, const char *debuglink_file,
                            GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    if (!debuglink_beside(file_name, debuglink_file))
        return -1;
    return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                        debuglink_crc, debuginfo_file_name);
}

struct sprof_symbolizer *sprof_symbolizer_new(bool look_further)
{
    elf_version(EV_CURRENT);
    struct sprof_symbolizer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->callbacks.find_elf = dwfl_build_id_find_elf;
    s->callbacks.find_debuginfo =
        look_further ? dwfl_standard_find_debuginfo : debuginfo_beside;
    s->callbacks.section_address = dwfl_offline_section_address;
    s->dwfl = dwfl_begin(&s->callbacks);
    if (!s->dwfl) {
        free(s);
        return NULL;
    }
    dwfl_report_begin(s->dwfl);
    s->reporting = true;
    sprof_string_table_init(&s->names);
    return s;
}

void sprof_symbolizer_free(struct sprof_symbolizer *s)
{
    if (!s)
        return;
    dwfl_end(s->dwfl);
    for (size_t i = 0; i < s->module_count; i++) {
        free(s->modules[i].symbols);
        free(s->modules[i].units);
        free(s->modules[i].unit_ranges);
        for (size_t u = 0; u < s->modules[i].unit_function_count; u++) {
            free(s->modules[i].unit_functions[u].ranges);
            free(s->modules[i].unit_functions[u].reach);
        }
        free(s->modules[i].unit_functions);
        sprof_map_free(&s->modules[i].unit_function_index);
    }
    free(s->modules);
    sprof_string_table_free(&s->names);
    free(s);
}

/* A different file may now sit at the recorded path: naming addresses from
 * it would be wrong, so such a file is refused. */
static bool build_id_matches(int fd, const struct sprof_module_desc *m, char *why, size_t why_size)
{
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!elf) {
        snprintf(why, why_size, "not an ELF file");
        return false;
    }
    const void *id = NULL;
    ssize_t size = dwelf_elf_gnu_build_id(elf, &id);
    bool same = size == (ssize_t)m->build_id_size && memcmp(id, m->build_id, m->build_id_size) == 0;
    elf_end(elf);
    if (!same)
        snprintf(why, why_size, "build-id differs from the one recorded");
    return same;
}

bool sprof_symbolizer_add_module(struct sprof_symbolizer *s, const struct sprof_module_desc *m,
                                 char *why, size_t why_size)
{
    if (!s->reporting) {
        snprintf(why, why_size, "modules added after lookups began");
        return false;
    }
    /* A trace names the files: never block on a FIFO or a device. */
    int fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, why_size, "%s", strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(why, why_size, "not a regular file");
        return false;
    }
    if (m->build_id_size > 0 && !build_id_matches(fd, m, why, why_size)) {
        close(fd);
        return false;
    }
    /* dwfl takes ownership of fd on success. */
    Dwfl_Module *mod = dwfl_report_elf(s->dwfl, m->path, m->path, fd, m->load_bias, false);
    if (!mod) {
        close(fd);
        snprintf(why, why_size, "%s", dwfl_errmsg(-1));
        return false;
    }
    return true;
}

/* The name of a subprogram or inlined-subroutine DIE, following
 * abstract_origin and specification; the linkage name where there is one. */
static const char *die_function_name(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *name = NULL;
    if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
        dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
        name = dwarf_formstring(&attr);
    if (!name && dwarf_attr_integrate(die, DW_AT_name, &attr))
        name = dwarf_formstring(&attr);
    return name;
}

/* DWARF file names may be relative to the compilation directory: make
 * them absolute, so locations read the same from any directory. */
static const char *absolute_path(struct sprof_symbolizer *s, const char *comp_dir,
                                 const char *file)
{
    if (!file || file[0] == '/' || !comp_dir || !*comp_dir)
        return file;
    char *joined = NULL;
    if (asprintf(&joined, "%s/%s", comp_dir, file) < 0)
        return file;
    /* Fold "dir/../" and "./" so paths stay readable. */
    char *out = joined;
    for (char *in = joined; *in;) {
        if (in[0] == '/' && in[1] == '.' && in[2] == '/') {
            in += 2;
        } else if (in[0] == '/' && in[1] == '.' && in[2] == '.' && (in[3] == '/' || !in[3]) &&
                   out > joined) {
            while (out > joined && *--out != '/')
                ;
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    uint32_t id = sprof_string_table_intern(&s->names, joined, strlen(joined));
    free(joined);
    return id ? sprof_string_table_get(&s->names, id) : file;
}

static struct module_symbols *module_symbols(struct sprof_symbolizer *s, Dwfl_Module *mod);
static const struct function_symbol *elf_symbol_at(struct sprof_symbolizer *s, Dwfl_Module *mod,
                                                   uint64_t address);

static int compare_unit_ranges(const void *left, const void *right)
{
    const struct unit_range *a = left, *b = right;
    return a->low < b->low ? -1 : a->low > b->low;
}

static bool add_unit_range(struct module_symbols *m, size_t *capacity, uint64_t low, uint64_t high,
                           size_t unit)
{
    if (!ARRAY_MAKE_ROOM(m->unit_ranges, *capacity, m->unit_range_count))
        return false;
    m->unit_ranges[m->unit_range_count++] = (struct unit_range){low, high, unit};
    return true;
}

/* Every unit's address ranges, sorted: read once per module, and only for
 * a module where libdw's own lookup found no unit. */
static void index_units(struct module_symbols *m, Dwarf *dwarf)
{
    size_t unit_count = 0, unit_capacity = 0, range_capacity = 0;
    bool ok = true;
    Dwarf_CU *cu = NULL;
    Dwarf_Die unit, subunit;
    while (ok && dwarf_get_units(dwarf, cu, &cu, NULL, NULL, &unit, &subunit) == 0) {
        if (!ARRAY_MAKE_ROOM(m->units, unit_capacity, unit_count)) {
            ok = false;
            break;
        }
        m->units[unit_count] = unit;
        Dwarf_Addr base, low, high;
        for (ptrdiff_t at = 0; ok && (at = dwarf_ranges(&unit, at, &base, &low, &high)) > 0;) {
            if (high > low)
                ok = add_unit_range(m, &range_capacity, low, high, unit_count);
        }
        unit_count++;
    }
    if (!ok || m->unit_range_count == 0) {
        free(m->units);
        free(m->unit_ranges);
        m->units = NULL;
        m->unit_ranges = NULL;
        m->unit_range_count = 0;
        m->units_state = UNITS_NONE;
        return;
    }
    qsort(m->unit_ranges, m->unit_range_count, sizeof *m->unit_ranges, compare_unit_ranges);
    m->units_state = UNITS_READY;
}

/* The unit holding address: libdw's lookup, else the module's own index
 * of its units (*indexed set). NULL when none holds it. */
static Dwarf_Die *unit_containing(struct sprof_symbolizer *s, Dwfl_Module *mod, uint64_t address,
                                  Dwarf_Addr *bias, bool *indexed)
{
    *indexed = false;
    Dwarf_Die *unit = dwfl_module_addrdie(mod, address, bias);
    if (unit)
        return unit;
    Dwarf *dwarf = dwfl_module_getdwarf(mod, bias);
    struct module_symbols *m = dwarf ? module_symbols(s, mod) : NULL;
    if (!m)
        return NULL;
    if (m->units_state == UNITS_UNKNOWN)
        index_units(m, dwarf);
    uint64_t at = address - *bias;
    size_t low = sprof_first_starting_after(m->unit_ranges, m->unit_range_count,
                                            sizeof *m->unit_ranges, at);
    if (low == 0 || at >= m->unit_ranges[low - 1].high)
        return NULL;
    *indexed = true;
    return &m->units[m->unit_ranges[low - 1].unit];
}

/* The file a function is declared in. dwarf_decl_file (libdw 0.188) takes
 * file 0 for "none", as DWARF 4 has it; in DWARF 5 it is the unit's primary
 * source file, and clang declares the functions of that file so. */
static const char *declaration_file(Dwarf_Die *scope)
{
    const char *file = dwarf_decl_file(scope);
    Dwarf_Attribute attr;
    Dwarf_Word index;
    Dwarf_Half version;
    Dwarf_Die unit;
    Dwarf_Files *files;
    size_t count;
    if (file || !dwarf_attr_integrate(scope, DW_AT_decl_file, &attr) ||
        dwarf_formudata(&attr, &index) != 0 || index != 0 ||
        dwarf_cu_info(scope->cu, &version, NULL, &unit, NULL, NULL, NULL, NULL) != 0 ||
        version < 5 || dwarf_getsrcfiles(&unit, &files, &count) != 0 || count == 0)
        return file;
    return dwarf_filesrc(files, 0, NULL, NULL);
}

/* Entries nested deeper than this (namespaces, classes, functions, blocks)
 * are not searched for functions, nor followed to an address. */
#define MAX_SCOPE_DEPTH 64

static bool holds_functions(int tag)
{
    switch (tag) {
    case DW_TAG_namespace:
    case DW_TAG_module:
    case DW_TAG_class_type:
    case DW_TAG_structure_type:
    case DW_TAG_union_type:
    case DW_TAG_subprogram:     /* nested functions (GNU C, Fortran, Ada) */
    case DW_TAG_lexical_block:
        return true;
    default:
        return false;
    }
}

static int compare_function_ranges(const void *left, const void *right)
{
    const struct function_range *a = left, *b = right;
    if (a->low != b->low)
        return a->low < b->low ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Adds the address ranges of every function of unit that has code. */
static bool collect_functions(Dwarf_Die *unit, struct unit_functions *found)
{
    size_t capacity = 0;
    Dwarf_Die stack[MAX_SCOPE_DEPTH];
    int depth = 0;
    if (dwarf_child(unit, &stack[0]) != 0)
        return true;
    depth = 1;
    while (depth > 0) {
        Dwarf_Die *die = &stack[depth - 1];
        int tag = dwarf_tag(die);
        if (tag == DW_TAG_subprogram) {
            Dwarf_Addr base, low, high;
            for (ptrdiff_t at = 0; (at = dwarf_ranges(die, at, &base, &low, &high)) > 0;) {
                if (high <= low)
                    continue;
                if (!ARRAY_MAKE_ROOM(found->ranges, capacity, found->count))
                    return false;
                found->ranges[found->count] =
                    (struct function_range){low, high, found->count, *die};
                found->count++;
            }
        }
        if (holds_functions(tag) && depth < MAX_SCOPE_DEPTH &&
            dwarf_child(die, &stack[depth]) == 0) {
            depth++;
            continue;
        }
        /* On to the next sibling, here or at a level above. */
        while (depth > 0) {
            Dwarf_Die next;
            if (dwarf_siblingof(&stack[depth - 1], &next) == 0) {
                stack[depth - 1] = next;
                break;
            }
            depth--;
        }
    }
    return true;
}

/* The unit's function index, made on first use; NULL if none can be. */
static struct unit_functions *unit_functions(struct module_symbols *m, Dwarf_Die *unit)
{
    Dwarf *dwarf = dwarf_cu_getdwarf(unit->cu);
    uint64_t key = dwarf_dieoffset(unit);
    uint32_t at;
    if (sprof_map_get(&m->unit_function_index, key, &at))
        return m->unit_functions[at].dwarf == dwarf ? &m->unit_functions[at] : NULL;
    if (!ARRAY_MAKE_ROOM(m->unit_functions, m->unit_function_capacity, m->unit_function_count))
        return NULL;
    struct unit_functions *found = &m->unit_functions[m->unit_function_count];
    *found = (struct unit_functions){.dwarf = dwarf};
    bool ok = collect_functions(unit, found);
    if (ok && found->count > 0) {
        qsort(found->ranges, found->count, sizeof *found->ranges, compare_function_ranges);
        found->reach = malloc(found->count * sizeof *found->reach);
        ok = found->reach != NULL;
        for (size_t i = 0; ok && i < found->count; i++) {
            uint64_t high = found->ranges[i].high;
            found->reach[i] = i > 0 && found->reach[i - 1] > high ? found->reach[i - 1] : high;
        }
    }
    if (!ok) { /* an empty index: such a unit is searched as libdw does */
        free(found->ranges);
        free(found->reach);
        *found = (struct unit_functions){.dwarf = dwarf};
    }
    if (!sprof_map_put(&m->unit_function_index, key, (uint32_t)m->unit_function_count)) {
        free(found->ranges);
        free(found->reach);
        return NULL;
    }
    m->unit_function_count++;
    return found;
}

/* The scopes holding pc, innermost first, ending at the innermost function
 * holding it (as dwarf_getscopes, but from the unit's function index and
 * down that function's own entries, not through the whole unit). Returns
 * their count, 0 where the index has no function there (*scopes NULL). */
static int scopes_from_index(struct module_symbols *m, Dwarf_Die *unit, uint64_t pc,
                             Dwarf_Die **scopes)
{
    *scopes = NULL;
    struct unit_functions *index = m ? unit_functions(m, unit) : NULL;
    if (!index || index->count == 0)
        return 0;
    size_t low = sprof_first_starting_after(index->ranges, index->count, sizeof *index->ranges, pc);
    /* The innermost function there; of several alike (aliases, as glibc's
     * assembly has), the first in the unit, as libdw's own search finds. */
    const struct function_range *best = NULL;
    for (size_t i = low; i-- > 0 && index->reach[i] > pc;) {
        const struct function_range *r = &index->ranges[i];
        if (pc >= r->high)
            continue;
        uint64_t size = r->high - r->low, best_size = best ? best->high - best->low : 0;
        if (!best || size < best_size || (size == best_size && r->order < best->order))
            best = r;
    }
    if (!best)
        return 0;
    Dwarf_Die chain[MAX_SCOPE_DEPTH];
    int depth = 0;
    chain[depth++] = best->function;
    Dwarf_Die child;
    while (depth < MAX_SCOPE_DEPTH && dwarf_child(&chain[depth - 1], &child) == 0) {
        bool deeper = false;
        do {
            if (dwarf_haspc(&child, pc) == 1) {
                chain[depth++] = child;
                deeper = true;
                break;
            }
            Dwarf_Die next;
            if (dwarf_siblingof(&child, &next) != 0)
                break;
            child = next;
        } while (true);
        if (!deeper)
            break;
    }
    *scopes = malloc((size_t)depth * sizeof **scopes);
    if (!*scopes)
        return 0;
    for (int i = 0; i < depth; i++)
        (*scopes)[i] = chain[depth - 1 - i];
    return depth;
}

/* The scopes holding pc found as libdw finds them, through the whole unit:
 * for a unit whose function index has no function there. */
static int scopes_from_unit(Dwarf_Die *unit, uint64_t pc, Dwarf_Die **scopes)
{
    int nscopes = dwarf_getscopes(unit, pc, scopes);
    if (nscopes <= 0)
        return nscopes;
    /* Past an inlined subroutine, dwarf_getscopes goes on with the scopes
     * of its abstract definition (where it was written: a lambda's would be
     * the function declaring it). The frames are the scopes it was inlined
     * into, its parents in the unit's tree. */
    bool inlined = false;
    for (int i = 0; i < nscopes && dwarf_tag(&(*scopes)[i]) != DW_TAG_subprogram; i++)
        inlined = inlined || dwarf_tag(&(*scopes)[i]) == DW_TAG_inlined_subroutine;
    if (!inlined)
        return nscopes;
    Dwarf_Die innermost = (*scopes)[0];
    free(*scopes);
    *scopes = NULL;
    return dwarf_getscopes_die(&innermost, scopes);
}

/* A function whose DWARF gives only its short name, where a C++ symbol
 * starts at its entry (a lambda's operator() in g++'s DWARF, a template
 * instance made at link time): the symbol's mangled name, which names it
 * whole once demangled. NULL where there is none. */
static const char *mangled_name_at_entry(struct sprof_symbolizer *s, Dwfl_Module *mod,
                                         Dwarf_Die *function, Dwarf_Addr bias)
{
    Dwarf_Attribute attr;
    Dwarf_Addr entry;
    if (dwarf_attr_integrate(function, DW_AT_linkage_name, &attr) ||
        dwarf_attr_integrate(function, DW_AT_MIPS_linkage_name, &attr) ||
        dwarf_entrypc(function, &entry) != 0)
        return NULL;
    const struct function_symbol *symbol = elf_symbol_at(s, mod, entry + bias);
    return symbol && symbol->start == entry + bias && !strncmp(symbol->name, "_Z", 2)
               ? symbol->name
               : NULL;
}

static int lookup_dwarf(struct sprof_symbolizer *s, Dwfl_Module *mod, uint64_t address,
                        struct sprof_frame_desc *frames, int max_frames)
{
    Dwarf_Addr bias;
    bool indexed;
    Dwarf_Die *cu = unit_containing(s, mod, address, &bias, &indexed);
    if (!cu)
        return 0;
    Dwarf_Die *scopes = NULL;
    int nscopes = scopes_from_index(module_symbols(s, mod), cu, address - bias, &scopes);
    if (nscopes == 0)
        nscopes = scopes_from_unit(cu, address - bias, &scopes);
    if (nscopes <= 0)
        return 0;

    const char *file = NULL;
    int line = 0;
    if (indexed) {
        Dwarf_Line *src = dwarf_getsrc_die(cu, address - bias);
        if (src) {
            file = dwarf_linesrc(src, NULL, NULL);
            dwarf_lineno(src, &line);
        }
    } else {
        Dwfl_Line *src = dwfl_module_getsrc(mod, address);
        if (src)
            file = dwfl_lineinfo(src, NULL, &line, NULL, NULL, NULL);
    }

    Dwarf_Files *files = NULL;
    size_t nfiles = 0;
    dwarf_getsrcfiles(cu, &files, &nfiles);
    Dwarf_Attribute comp_dir_attr;
    const char *comp_dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &comp_dir_attr));

    int count = 0;
    for (int i = 0; i < nscopes && count < max_frames; i++) {
        Dwarf_Die *scope = &scopes[i];
        int tag = dwarf_tag(scope);
        if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
            continue;
        const char *name = tag == DW_TAG_subprogram ? mangled_name_at_entry(s, mod, scope, bias)
                                                    : NULL;
        if (!name)
            name = die_function_name(scope);
        struct sprof_frame_desc *frame = &frames[count++];
        frame->function = name ? name : "??";
        frame->file = absolute_path(s, comp_dir, file);
        frame->line = line > 0 ? (uint32_t)line : 0;
        frame->decl_file = absolute_path(s, comp_dir, declaration_file(scope));
        int decl_line = 0;
        frame->decl_line = dwarf_decl_line(scope, &decl_line) == 0 && decl_line > 0
                               ? (uint32_t)decl_line
                               : 0;
        if (tag == DW_TAG_subprogram)
            break;
        /* The next frame out executes the call site of this inlined one. */
        Dwarf_Attribute attr;
        Dwarf_Word value;
        file = NULL;
        line = 0;
        if (dwarf_attr(scope, DW_AT_call_file, &attr) && dwarf_formudata(&attr, &value) == 0 &&
            files)
            file = dwarf_filesrc(files, value, NULL, NULL);
        if (dwarf_attr(scope, DW_AT_call_line, &attr) && dwarf_formudata(&attr, &value) == 0)
            line = (int)value;
    }
    free(scopes);
    return count;
}

static int compare_symbols(const void *left, const void *right)
{
    const struct function_symbol *a = left, *b = right;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    /* Of aliases at one address, the sized one first. */
    return a->end > b->end ? -1 : a->end < b->end;
}

static bool symbol_before(const struct function_symbol *a, const struct function_symbol *b)
{
    return a->start < b->start || (a->start == b->start && a->end > b->end);
}

/* Sorts symbols[0, count) stably by compare_symbols' order; spare holds
 * count / 2 + 1 entries. Top-down, so that most merging happens on runs
 * that fit in the cache (a bottom-up sort's passes over all 30,000 symbols
 * cost more time than qsort, with fewer instructions). */
static void merge_sort(struct function_symbol *symbols, struct function_symbol *spare,
                       size_t count)
{
    if (count <= 16) {
        for (size_t i = 1; i < count; i++) {
            struct function_symbol moving = symbols[i];
            size_t j = i;
            for (; j > 0 && symbol_before(&moving, &symbols[j - 1]); j--)
                symbols[j] = symbols[j - 1];
            symbols[j] = moving;
        }
        return;
    }
    size_t half = count / 2;
    merge_sort(symbols, spare, half);
    merge_sort(symbols + half, spare, count - half);
    if (!symbol_before(&symbols[half], &symbols[half - 1]))
        return;
    memcpy(spare, symbols, half * sizeof *spare);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < count)
        symbols[k++] = symbol_before(&symbols[j], &spare[i]) ? symbols[j++] : spare[i++];
    while (i < half)
        symbols[k++] = spare[i++];
}

/* qsort's order, stably, without qsort's call per comparison: that was
 * half of a gcc process's exit (25 million instructions for cc1's 30,000
 * dynamic symbols). */
static void sort_symbols(struct function_symbol *symbols, size_t count)
{
    struct function_symbol *spare = malloc((count / 2 + 1) * sizeof *spare);
    if (!spare) {
        qsort(symbols, count, sizeof *symbols, compare_symbols);
        return;
    }
    merge_sort(symbols, spare, count);
    free(spare);
}

/* Keeps, of m's symbols (in table order), those containing an announced
 * address, in the order and with the ends sort_symbols and the whole table
 * would give them: a sizeless symbol ends at the next greater start of any
 * symbol, or at once if another sizeless one follows it at the same start,
 * and sorts after the sized ones at its start. Returns false, leaving the
 * symbols as they were, if out of memory. */
static bool keep_expected(const struct sprof_symbolizer *s, struct module_symbols *m)
{
    struct expected_pages pages;
    index_expected_pages(s, m->module, &pages);
    size_t sizeless_count = 0;
    for (size_t i = 0; i < m->count; i++)
        sizeless_count += m->symbols[i].end == m->symbols[i].start;
    struct function_symbol *sizeless = malloc((sizeless_count + 1) * sizeof *sizeless);
    struct function_symbol *merged = malloc((m->count + 1) * sizeof *merged);
    if (!sizeless || !merged) {
        free(sizeless);
        free(merged);
        free(pages.first);
        return false;
    }
    size_t k = 0;
    for (size_t i = 0; i < m->count; i++) {
        if (m->symbols[i].end == m->symbols[i].start)
            sizeless[k++] = m->symbols[i];
    }
    sort_symbols(sizeless, sizeless_count); /* by start; stable, so table order at one */
    /* Each start reaches back to the last sizeless symbol before it, which
     * ends at the nearest; one never reached stays empty. */
    for (size_t i = 0; sizeless_count > 0 && i < m->count; i++) {
        uint64_t start = m->symbols[i].start;
        size_t low = 0, high = sizeless_count;
        while (low < high) {
            size_t middle = low + (high - low) / 2;
            if (sizeless[middle].start < start)
                low = middle + 1;
            else
                high = middle;
        }
        struct function_symbol *before = low > 0 ? &sizeless[low - 1] : NULL;
        if (before && (before->end == before->start || start < before->end))
            before->end = start;
    }
    size_t sizeless_kept = 0;
    for (size_t j = 0; j < sizeless_count; j++) {
        if (expects_within(s, &pages, sizeless[j].start, sizeless[j].end))
            sizeless[sizeless_kept++] = sizeless[j];
    }
    size_t sized_kept = 0;
    for (size_t i = 0; i < m->count; i++) {
        const struct function_symbol *f = &m->symbols[i];
        if (f->end > f->start && expects_within(s, &pages, f->start, f->end))
            m->symbols[sized_kept++] = *f;
    }
    sort_symbols(m->symbols, sized_kept);
    /* Merged: at one start, the sized ones first. */
    size_t i = 0, j = 0, n = 0;
    while (i < sized_kept || j < sizeless_kept) {
        bool take_sized =
            j == sizeless_kept || (i < sized_kept && m->symbols[i].start <= sizeless[j].start);
        merged[n++] = take_sized ? m->symbols[i++] : sizeless[j++];
    }
    free(sizeless);
    free(pages.first);
    free(m->symbols);
    m->symbols = merged;
    m->count = n;
    return true;
}

static struct module_symbols *module_symbols(struct sprof_symbolizer *s, Dwfl_Module *mod)
{
    for (size_t i = 0; i < s->module_count; i++) {
        if (s->modules[i].module == mod)
            return &s->modules[i];
    }
    struct module_symbols *modules = realloc(s->modules, (s->module_count + 1) * sizeof *modules);
    if (!modules)
        return NULL;
    s->modules = modules;
    struct module_symbols *m = &s->modules[s->module_count++];
    m->module = mod;
    m->symbols = NULL;
    m->count = 0;
    m->unwind_state = UNWIND_UNKNOWN;
    m->unnamed_name = NULL;
    m->units_state = UNITS_UNKNOWN;
    m->units = NULL;
    m->unit_ranges = NULL;
    m->unit_range_count = 0;
    sprof_map_init(&m->unit_function_index);
    m->unit_functions = NULL;
    m->unit_function_count = m->unit_function_capacity = 0;
    int total = dwfl_module_getsymtab(mod);
    if (total <= 0)
        return m;
    m->symbols = malloc((size_t)total * sizeof *m->symbols);
    if (!m->symbols)
        return m;
    for (int i = 0; i < total; i++) {
        GElf_Sym sym;
        GElf_Addr address;
        const char *name = dwfl_module_getsym_info(mod, i, &sym, &address, NULL, NULL, NULL);
        int type = GELF_ST_TYPE(sym.st_info);
        if (!name || !*name || sym.st_shndx == SHN_UNDEF ||
            (type != STT_FUNC && type != STT_GNU_IFUNC))
            continue;
        m->symbols[m->count++] =
            (struct function_symbol){address, address + sym.st_size, name, sym.st_size == 0};
    }
    if (s->expected_count > 0 && keep_expected(s, m))
        return m;
    sort_symbols(m->symbols, m->count);
    /* A sizeless function ends where the next one starts. */
    for (size_t i = 0; i + 1 < m->count; i++) {
        if (m->symbols[i].end == m->symbols[i].start)
            m->symbols[i].end = m->symbols[i + 1].start;
    }
    return m;
}

/* The module's unwind table, read on first need; NULL if it has none. */
static struct sprof_unwind_table *module_unwind(struct module_symbols *m, Dwfl_Module *mod,
                                                GElf_Addr *bias)
{
    Elf *elf = dwfl_module_getelf(mod, bias);
    if (!elf)
        return NULL;
    if (m->unwind_state == UNWIND_UNKNOWN)
        m->unwind_state = sprof_unwind_table_open(elf, &m->unwind) ? UNWIND_READY : UNWIND_NONE;
    return m->unwind_state == UNWIND_READY ? &m->unwind : NULL;
}

/* The section holding address, or NULL. */
static Elf_Scn *section_of(Dwfl_Module *mod, uint64_t address)
{
    Dwarf_Addr offset = address, bias;
    return dwfl_module_address_section(mod, &offset, &bias);
}

/* A sizeless symbol is taken to reach the next one, but not out of its
 * section, nor into code the unwind table gives to another function, nor
 * past its own unwind entry:
 * crtstuff's frame_dummy reached over all of a GHC program's Haskell code
 * (which has neither symbols nor unwind entries), and _init over the PLT.
 * Where the table says nothing of either, the symbol reaches on. */
static bool sizeless_reaches(struct module_symbols *m, Dwfl_Module *mod,
                             const struct function_symbol *f, uint64_t address)
{
    if (section_of(mod, address) != section_of(mod, f->start))
        return false;
    GElf_Addr bias = 0;
    struct sprof_unwind_table *unwind = module_unwind(m, mod, &bias);
    uint64_t start, end;
    if (!unwind)
        return true;
    if (sprof_unwind_table_find(unwind, address - bias, &start, &end))
        return start <= f->start - bias;
    return !sprof_unwind_table_find(unwind, f->start - bias, &start, &end);
}

/* The function symbol that contains address, or NULL. Only a symbol that
 * really contains it names it: the nearest preceding one, in a stripped
 * binary, would misattribute the time. */
static const struct function_symbol *elf_symbol_at(struct sprof_symbolizer *s, Dwfl_Module *mod,
                                                   uint64_t address)
{
    struct module_symbols *m = module_symbols(s, mod);
    if (!m || m->count == 0)
        return NULL;
    size_t low = 0, high = m->count;
    while (high - low > 1) {
        size_t middle = low + (high - low) / 2;
        if (m->symbols[middle].start <= address)
            low = middle;
        else
            high = middle;
    }
    /* Aliases and nested symbols: look back over those starting earlier
     * that may still contain the address. */
    for (size_t i = low + 1; i-- > 0 && low - i < 8;) {
        const struct function_symbol *f = &m->symbols[i];
        if (f->start <= address && address < f->end &&
            (!f->sizeless || sizeless_reaches(m, mod, f, address)))
            return f;
    }
    return NULL;
}

static const char *elf_symbol_name(struct sprof_symbolizer *s, Dwfl_Module *mod, uint64_t address)
{
    const struct function_symbol *f = elf_symbol_at(s, mod, address);
    return f ? f->name : NULL;
}

/* The module's file name followed by suffix, kept in the symbolizer's
 * names; NULL when out of memory. */
static const char *named_after_module(struct sprof_symbolizer *s, Dwfl_Module *mod,
                                      const char *suffix)
{
    const char *module = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    const char *slash = module ? strrchr(module, '/') : NULL;
    char name[512];
    int length = snprintf(name, sizeof name, "%s%s", slash ? slash + 1 : module ? module : "??",
                          suffix);
    if (length < 0 || (size_t)length >= sizeof name)
        return NULL;
    uint32_t id = sprof_string_table_intern(&s->names, name, (size_t)length);
    return id ? sprof_string_table_get(&s->names, id) : NULL;
}

/* A PLT stub (in .plt, .plt.sec, .plt.got) is named "module@plt": its
 * time is the call's way out of the module, not any function's. */
static const char *plt_stub(struct sprof_symbolizer *s, Dwfl_Module *mod, uint64_t address)
{
    Elf_Scn *scn = section_of(mod, address);
    GElf_Addr bias;
    Elf *elf = scn ? dwfl_module_getelf(mod, &bias) : NULL;
    size_t names;
    GElf_Shdr shdr;
    const char *section = elf && elf_getshdrstrndx(elf, &names) == 0 && gelf_getshdr(scn, &shdr)
                              ? elf_strptr(elf, names, shdr.sh_name)
                              : NULL;
    if (!section || strncmp(section, ".plt", 4) != 0)
        return NULL;
    return named_after_module(s, mod, "@plt");
}

/* A stripped function still has an unwind-table entry (FDE) giving its
 * start: "module+0xSTART" names it, so all of its addresses add up in one
 * place. NULL where there is no entry. */
static const char *unnamed_function(struct sprof_symbolizer *s, Dwfl_Module *mod,
                                    uint64_t address)
{
    struct module_symbols *m = module_symbols(s, mod);
    if (!m)
        return NULL;
    GElf_Addr bias = 0;
    struct sprof_unwind_table *unwind = module_unwind(m, mod, &bias);
    uint64_t start, end;
    if (m->unnamed_name && m->unnamed_start <= address - bias && address - bias < m->unnamed_end)
        return m->unnamed_name;
    if (!unwind || !sprof_unwind_table_find(unwind, address - bias, &start, &end))
        return NULL;
    char offset[24];
    snprintf(offset, sizeof offset, "+0x%" PRIx64, start);
    const char *name = named_after_module(s, mod, offset);
    if (!name)
        return NULL;
    m->unnamed_start = start;
    m->unnamed_end = end;
    m->unnamed_name = name;
    return name;
}

int sprof_symbolizer_lookup(struct sprof_symbolizer *s, uint64_t address,
                            struct sprof_frame_desc *frames, int max_frames, uint16_t *flags)
{
    *flags = 0;
    if (max_frames <= 0)
        return 0;
    if (s->reporting) {
        dwfl_report_end(s->dwfl, NULL, NULL);
        s->reporting = false;
    }
    Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, address);
    if (!mod)
        return 0;
    give_out_of_memory_handler(s, mod);
    int count = lookup_dwarf(s, mod, address, frames, max_frames);
    if (count > 0) {
        *flags = SPROF_SYMBOL_DWARF;
        return count;
    }
    const char *name = elf_symbol_name(s, mod, address);
    if (!name)
        name = plt_stub(s, mod, address);
    if (name) {
        memset(&frames[0], 0, sizeof frames[0]);
        frames[0].function = name;
        *flags = SPROF_SYMBOL_ELF;
        return 1;
    }
    name = unnamed_function(s, mod, address);
    if (!name)
        return 0;
    memset(&frames[0], 0, sizeof frames[0]);
    frames[0].function = name;
    *flags = SPROF_SYMBOL_UNWIND_TABLE;
    return 1;
}
