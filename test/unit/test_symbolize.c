/* The symbolizer names an address the same whether or not it was told the
 * addresses in advance (sprof_symbolizer_expect keeps only the symbols that
 * contain them): checked on symbol_shapes.S's awkward symbols and on every
 * module this test has loaded, libc and libdw among them. */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize.h"
#include "unit.h"

extern const char shape_sized[], shape_sizeless[], shape_twin_first[], shape_alias_sized[],
    shape_outer[], shape_inner[], shape_sizeless_cfi[], shape_sizeless_bare[], shape_unnamed_cfi[],
    shape_last_sizeless[], shape_end[];

#define MAX_MODULES 64

struct loaded_module {
    char path[512];
    uint64_t bias;
    uint64_t code_start, code_end; /* the executable segment */
};

static struct loaded_module modules[MAX_MODULES];
static size_t module_count;

static int note_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size, (void)data;
    if (module_count == MAX_MODULES)
        return 1;
    const char *path = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : NULL;
    if (!path && module_count > 0)
        return 0; /* the vDSO: no file */
    struct loaded_module *m = &modules[module_count];
    snprintf(m->path, sizeof m->path, "%s", path ? path : "/proc/self/exe");
    m->bias = info->dlpi_addr;
    m->code_start = m->code_end = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            m->code_start = info->dlpi_addr + ph->p_vaddr;
            m->code_end = m->code_start + ph->p_memsz;
        }
    }
    if (m->code_end > m->code_start)
        module_count++;
    return 0;
}

static struct sprof_symbolizer *new_symbolizer(void)
{
    struct sprof_symbolizer *s = sprof_symbolizer_new(false);
    CHECK(s != NULL);
    for (size_t i = 0; i < module_count; i++) {
        struct sprof_module_desc desc = {.path = modules[i].path, .load_bias = modules[i].bias};
        char why[256];
        sprof_symbolizer_add_module(s, &desc, why, sizeof why);
    }
    return s;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Addresses across every module's code, about max_per_module each, and
 * every byte of the shapes. Ascending. */
static uint64_t *choose_addresses(size_t max_per_module, size_t *count)
{
    size_t capacity = module_count * (max_per_module + 2) + 512;
    uint64_t *addresses = malloc(capacity * sizeof *addresses);
    CHECK(addresses != NULL);
    size_t n = 0;
    for (size_t i = 0; i < module_count; i++) {
        uint64_t span = modules[i].code_end - modules[i].code_start;
        uint64_t stride = span / max_per_module + 1;
        stride |= 1; /* odd: lands at every alignment */
        for (uint64_t a = modules[i].code_start; a < modules[i].code_end && n < capacity - 512;
             a += stride)
            addresses[n++] = a;
    }
    uint64_t first = (uint64_t)(uintptr_t)shape_sized;
    uint64_t last = (uint64_t)(uintptr_t)shape_end + 16;
    for (uint64_t a = first; a < last && n < capacity; a++)
        addresses[n++] = a;
    qsort(addresses, n, sizeof *addresses, compare_u64);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++) {
        if (unique == 0 || addresses[unique - 1] != addresses[i])
            addresses[unique++] = addresses[i];
    }
    *count = unique;
    return addresses;
}

static const char *function_at(struct sprof_symbolizer *s, const void *address)
{
    struct sprof_frame_desc frames[8];
    uint16_t flags;
    int count = sprof_symbolizer_lookup(s, (uint64_t)(uintptr_t)address, frames, 8, &flags);
    return count > 0 ? frames[0].function : NULL;
}

static void same_frames(uint64_t address, const struct sprof_frame_desc *a, int a_count,
                        uint16_t a_flags, const struct sprof_frame_desc *b, int b_count,
                        uint16_t b_flags)
{
    if (a_count != b_count || a_flags != b_flags)
        fprintf(stderr, "at 0x%llx: %d frames (flags %u) against %d (flags %u)\n",
                (unsigned long long)address, a_count, a_flags, b_count, b_flags);
    CHECK_EQ(a_count, b_count);
    CHECK_EQ(a_flags, b_flags);
    for (int f = 0; f < a_count; f++) {
        CHECK_STR(b[f].function, a[f].function);
        CHECK((a[f].file == NULL) == (b[f].file == NULL));
        if (a[f].file)
            CHECK_STR(b[f].file, a[f].file);
        CHECK_EQ(b[f].line, a[f].line);
    }
}

static void test_expecting_names_the_same(void)
{
    size_t count;
    uint64_t *addresses = choose_addresses(20000, &count);
    CHECK(count > 1000);
    struct sprof_symbolizer *plain = new_symbolizer();
    struct sprof_symbolizer *expecting = new_symbolizer();
    sprof_symbolizer_expect(expecting, addresses, count);
    size_t named = 0;
    for (size_t i = 0; i < count; i++) {
        struct sprof_frame_desc a[8], b[8];
        uint16_t a_flags, b_flags;
        int a_count = sprof_symbolizer_lookup(plain, addresses[i], a, 8, &a_flags);
        int b_count = sprof_symbolizer_lookup(expecting, addresses[i], b, 8, &b_flags);
        same_frames(addresses[i], a, a_count, a_flags, b, b_count, b_flags);
        named += a_count > 0;
    }
    /* Most code is in some function: a lookup that named nothing would
     * make the comparison empty. */
    CHECK(named > count / 2);
    sprof_symbolizer_free(plain);
    sprof_symbolizer_free(expecting);
    free(addresses);
}

/* What the shapes are named, each way: a symbol names only addresses it
 * contains; a sizeless one reaches the next symbol, unless the unwind table
 * gives the code between to no function or to another. */
static void check_shapes(struct sprof_symbolizer *s)
{
    CHECK_STR(function_at(s, shape_sized + 47), "shape_sized");
    CHECK_STR(function_at(s, shape_sizeless), "shape_sizeless");
    CHECK_STR(function_at(s, shape_sizeless + 39), "shape_sizeless");
    const char *twin = function_at(s, shape_twin_first + 23);
    CHECK(twin && (!strcmp(twin, "shape_twin_first") || !strcmp(twin, "shape_twin_second")));
    const char *alias = function_at(s, shape_alias_sized + 15);
    CHECK(alias &&
          (!strcmp(alias, "shape_alias_sized") || !strcmp(alias, "shape_alias_sizeless")));
    /* Past the sized alias, the sizeless one still covers the rest. */
    CHECK_STR(function_at(s, shape_alias_sized + 16), "shape_alias_sizeless");
    CHECK_STR(function_at(s, shape_outer + 15), "shape_outer");
    CHECK_STR(function_at(s, shape_inner), "shape_inner");
    CHECK_STR(function_at(s, shape_inner + 16), "shape_outer");
    /* A sizeless symbol reaches neither past its own unwind entry into
     * code without one, nor into another function's entry. */
    CHECK_STR(function_at(s, shape_sizeless_cfi + 15), "shape_sizeless_cfi");
    CHECK(function_at(s, shape_sizeless_cfi + 16) == NULL);
    CHECK_STR(function_at(s, shape_sizeless_bare + 15), "shape_sizeless_bare");
    const char *plt_like = function_at(s, shape_unnamed_cfi + 3);
    CHECK(plt_like != NULL);
    CHECK_CONTAINS(plt_like, "+0x"); /* named by its own entry */
    CHECK_STR(function_at(s, shape_last_sizeless + 15), "shape_last_sizeless");
    CHECK_STR(function_at(s, shape_end + 15), "shape_end");
}

/* An address inside this program's PLT (.plt.sec, else .plt); 0 if it
 * has none. */
static uint64_t plt_address(void)
{
    elf_version(EV_CURRENT);
    int fd = open("/proc/self/exe", O_RDONLY);
    CHECK(fd >= 0);
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    size_t names;
    CHECK(elf != NULL && elf_getshdrstrndx(elf, &names) == 0);
    uint64_t found = 0;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn)) != NULL;) {
        GElf_Shdr shdr;
        const char *name = gelf_getshdr(scn, &shdr) ? elf_strptr(elf, names, shdr.sh_name) : NULL;
        if (name && (!strcmp(name, ".plt.sec") || (!strcmp(name, ".plt") && !found)) &&
            shdr.sh_size > 8)
            found = modules[0].bias + shdr.sh_addr + 4;
    }
    elf_end(elf);
    close(fd);
    return found;
}

static void test_shapes_named(void)
{
    size_t count;
    uint64_t *addresses = choose_addresses(100, &count);
    struct sprof_symbolizer *plain = new_symbolizer();
    check_shapes(plain);
    struct sprof_symbolizer *expecting = new_symbolizer();
    sprof_symbolizer_expect(expecting, addresses, count);
    check_shapes(expecting);
    /* A PLT stub: no function's, named by its module. */
    uint64_t plt = plt_address();
    if (plt) {
        CHECK_STR(function_at(plain, (const void *)(uintptr_t)plt), "exe@plt");
        CHECK_STR(function_at(expecting, (const void *)(uintptr_t)plt), "exe@plt");
    } else {
        printf("no PLT in this build: its name is not checked\n");
    }
    sprof_symbolizer_free(plain);
    sprof_symbolizer_free(expecting);
    free(addresses);
}

int main(void)
{
    dl_iterate_phdr(note_module, NULL);
    CHECK(module_count >= 2);
#if !defined(__x86_64__) && !defined(__aarch64__)
    return UNIT_SKIP;
#endif
    static const struct unit_case cases[] = {
        UNIT_CASE(test_shapes_named),
        UNIT_CASE(test_expecting_names_the_same),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
