/* Inlined frames are named by the functions they were inlined into, and a
 * module whose DWARF has no .debug_aranges (clang writes none by default) is
 * named from its DWARF all the same, each frame with its declaration's file:
 * checked on every address of inline_shapes.c's two functions, built as a
 * library with and without that section, and by clang where it is
 * installed (DWARF 5, whose file 0 clang declares functions in). And a
 * function defined in a namespace is named from DWARF, whoever compiled it
 * (namespace_shapes.cpp). */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include "sprof/trace_format.h"
#include "symbolize.h"
#include "unit.h"

#define MAX_FRAMES 16

static const char *library_with_aranges, *library_without_aranges, *library_by_clang;
/* namespace_shapes.cpp, built by each C++ compiler found. */
static const char *namespaced_libraries[4];
static int namespaced_library_count;

/* The start and size of a function symbol, from the file's .symtab, and its
 * name: a name ending in '*' matches the first symbol it starts. */
static void find_function_named(const char *path, const char *name, uint64_t *start,
                                uint64_t *size, char *found_name, size_t found_size)
{
    size_t length = strlen(name);
    bool prefix = length > 0 && name[length - 1] == '*';
    elf_version(EV_CURRENT);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    CHECK(elf != NULL);
    *size = 0;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn)) != NULL;) {
        GElf_Shdr shdr;
        if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_SYMTAB)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        for (size_t i = 0; data && i < shdr.sh_size / shdr.sh_entsize && *size == 0; i++) {
            GElf_Sym sym;
            const char *sym_name = gelf_getsym(data, (int)i, &sym)
                                       ? elf_strptr(elf, shdr.sh_link, sym.st_name)
                                       : NULL;
            if (sym_name && sym.st_size > 0 &&
                (prefix ? !strncmp(sym_name, name, length - 1) : !strcmp(sym_name, name))) {
                *start = sym.st_value;
                *size = sym.st_size;
                snprintf(found_name, found_size, "%s", sym_name);
            }
        }
    }
    elf_end(elf);
    close(fd);
    CHECK(*size > 0);
}

static void find_function(const char *path, const char *name, uint64_t *start, uint64_t *size)
{
    char found_name[256];
    find_function_named(path, name, start, size, found_name, sizeof found_name);
}

static struct sprof_symbolizer *symbolizer_for(const char *path)
{
    struct sprof_symbolizer *s = sprof_symbolizer_new(false);
    CHECK(s != NULL);
    struct sprof_module_desc desc = {.path = path, .load_bias = 0};
    char why[256] = "";
    if (!sprof_symbolizer_add_module(s, &desc, why, sizeof why))
        unit_fail_str(__FILE__, __LINE__, "module added", why, "");
    return s;
}

/* The chain's names, innermost first, joined by ';'. */
static void chain_text(const struct sprof_frame_desc *frames, int count, char *text, size_t size)
{
    text[0] = '\0';
    for (int i = 0; i < count; i++) {
        strncat(text, frames[i].function, size - strlen(text) - 1);
        if (i + 1 < count)
            strncat(text, ";", size - strlen(text) - 1);
    }
}

/* Every address of function names one of the chains allowed (all of them
 * DWARF, with a line for each call site), the longest at least once. Returns
 * each address's chain in texts. */
static void check_chains(const char *path, const char *function, const char *const *allowed,
                         size_t allowed_count, char (*texts)[256], size_t text_count)
{
    uint64_t start, size;
    find_function(path, function, &start, &size);
    CHECK(size <= text_count);
    struct sprof_symbolizer *s = symbolizer_for(path);
    bool longest_seen = false;
    for (uint64_t at = start; at < start + size; at++) {
        struct sprof_frame_desc frames[MAX_FRAMES];
        uint16_t flags;
        int count = sprof_symbolizer_lookup(s, at, frames, MAX_FRAMES, &flags);
        CHECK(count > 0);
        CHECK_EQ(flags, SPROF_SYMBOL_DWARF);
        char *text = texts[at - start];
        chain_text(frames, count, text, sizeof texts[0]);
        bool known = false;
        for (size_t i = 0; i < allowed_count; i++)
            known = known || !strcmp(text, allowed[i]);
        if (!known)
            unit_fail_str(__FILE__, __LINE__, "an allowed chain", text, allowed[0]);
        for (int i = 0; i < count; i++) {
            /* Line 0 is the line table's "no line" (clang's, for code it
             * made up); a call site always has one. */
            CHECK(i == 0 || frames[i].line > 0);
            const char *file = frames[i].decl_file;
            if (!file || strlen(file) < 15 || strcmp(file + strlen(file) - 15, "inline_shapes.c"))
                unit_fail_str(__FILE__, __LINE__, "declared in", file, "inline_shapes.c");
        }
        longest_seen = longest_seen || !strcmp(text, allowed[0]);
    }
    CHECK(longest_seen);
    sprof_symbolizer_free(s);
}

static char with_texts[4096][256], without_texts[4096][256];

static void check_both(const char *function, const char *const *allowed, size_t allowed_count)
{
    if (library_by_clang)
        check_chains(library_by_clang, function, allowed, allowed_count, with_texts, 4096);
    check_chains(library_with_aranges, function, allowed, allowed_count, with_texts, 4096);
    check_chains(library_without_aranges, function, allowed, allowed_count, without_texts, 4096);
    uint64_t start, size;
    find_function(library_with_aranges, function, &start, &size);
    for (uint64_t i = 0; i < size; i++)
        CHECK_STR(without_texts[i], with_texts[i]);
}

static void test_two_deep(void)
{
    const char *const allowed[] = {"inner_step;middle_step;outer_caller", "middle_step;outer_caller",
                                   "outer_caller"};
    check_both("outer_caller", allowed, 3);
}

/* inner_step's other instance: its caller is other_caller, not where
 * inner_step was written, nor outer_caller's middle_step. */
static void test_one_deep(void)
{
    const char *const allowed[] = {"inner_step;other_caller", "other_caller"};
    check_both("other_caller", allowed, 2);
}

/* Every address of a function defined two namespaces deep names it from
 * DWARF, with its line and the file it is declared in. */
static void test_namespaced_function(void)
{
    const char *mangled = "_ZN11outer_space11inner_space15namespaced_workEj";
    if (namespaced_library_count == 0)
        printf("no C++ compiler: namespaced functions are not checked\n");
    for (int l = 0; l < namespaced_library_count; l++) {
        const char *path = namespaced_libraries[l];
        uint64_t start, size;
        find_function(path, mangled, &start, &size);
        struct sprof_symbolizer *s = symbolizer_for(path);
        bool some_line = false;
        for (uint64_t at = start; at < start + size; at++) {
            struct sprof_frame_desc frames[MAX_FRAMES];
            uint16_t flags;
            int count = sprof_symbolizer_lookup(s, at, frames, MAX_FRAMES, &flags);
            CHECK_EQ(count, 1);
            CHECK_EQ(flags, SPROF_SYMBOL_DWARF);
            CHECK_STR(frames[0].function, mangled);
            const char *file = frames[0].decl_file;
            if (!file || strlen(file) < 20 ||
                strcmp(file + strlen(file) - 20, "namespace_shapes.cpp"))
                unit_fail_str(__FILE__, __LINE__, "declared in", file, "namespace_shapes.cpp");
            some_line = some_line || frames[0].line > 0;
        }
        CHECK(some_line);
        sprof_symbolizer_free(s);
    }
}

/* A template instance for a lambda, to which g++ gives no linkage name in
 * DWARF: named by its symbol, mangled, at every address (its outermost
 * frame; the lambda's body may be inlined in it). */
static void test_lambda_instance(void)
{
    for (int l = 0; l < namespaced_library_count; l++) {
        const char *path = namespaced_libraries[l];
        uint64_t start, size;
        char symbol[256];
        find_function_named(path, "_Z11apply_twice*", &start, &size, symbol, sizeof symbol);
        struct sprof_symbolizer *s = symbolizer_for(path);
        for (uint64_t at = start; at < start + size; at++) {
            struct sprof_frame_desc frames[MAX_FRAMES];
            uint16_t flags;
            int count = sprof_symbolizer_lookup(s, at, frames, MAX_FRAMES, &flags);
            CHECK(count >= 1);
            CHECK_EQ(flags, SPROF_SYMBOL_DWARF);
            CHECK_STR(frames[count - 1].function, symbol);
        }
        sprof_symbolizer_free(s);
    }
}

int main(int argc, char **argv)
{
    int at = 1;
    for (; at < argc && strcmp(argv[at], "--namespaced"); at++) {
        if (at == 1)
            library_with_aranges = argv[at];
        else if (at == 2)
            library_without_aranges = argv[at];
        else if (at == 3)
            library_by_clang = argv[at];
    }
    for (at++; at < argc && namespaced_library_count < 4; at++)
        namespaced_libraries[namespaced_library_count++] = argv[at];
    if (!library_with_aranges || !library_without_aranges) {
        fprintf(stderr, "usage: test_inline_frames LIBRARY LIBRARY-WITHOUT-ARANGES "
                        "[LIBRARY-BY-CLANG] [--namespaced LIBRARY...]\n");
        return 2;
    }
    if (!library_by_clang)
        printf("no clang: its DWARF 5 is not checked\n");
    static const struct unit_case cases[] = {
        UNIT_CASE(test_two_deep),
        UNIT_CASE(test_one_deep),
        UNIT_CASE(test_namespaced_function),
        UNIT_CASE(test_lambda_instance),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
