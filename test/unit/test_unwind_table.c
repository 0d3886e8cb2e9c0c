/* The unwind-table lookup names stripped functions by their start: check it
 * against this test's own functions, whose starts the linker knows. */
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <unistd.h>

#include "unit.h"
#include "unwind_table.h"

static volatile int sink;

__attribute__((noinline)) static int measured_function(int n)
{
    for (int i = 0; i < n; i++)
        sink += i * 3;
    return sink;
}

static int main_program_bias(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    *(uint64_t *)data = info->dlpi_addr; /* the first object is the program */
    return 1;
}

static Elf *open_self(int *fd)
{
    elf_version(EV_CURRENT);
    *fd = open("/proc/self/exe", O_RDONLY);
    CHECK(*fd >= 0);
    Elf *elf = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
    CHECK(elf != NULL);
    return elf;
}

static void test_finds_function_start(void)
{
    uint64_t bias = 0;
    dl_iterate_phdr(main_program_bias, &bias);
    uint64_t function = (uint64_t)(uintptr_t)&measured_function - bias;
    int fd;
    Elf *elf = open_self(&fd);
    uint64_t start = 0, end = 0;
    CHECK(sprof_unwind_table_function(elf, function + 3, &start, &end));
    CHECK_EQ(start, function);
    CHECK(end > function + 3);
    /* Its first byte belongs to it too. */
    CHECK(sprof_unwind_table_function(elf, function, &start, &end));
    CHECK_EQ(start, function);
    CHECK(measured_function(3) >= 0);
    elf_end(elf);
    close(fd);
}

static void test_outside_any_function(void)
{
    int fd;
    Elf *elf = open_self(&fd);
    uint64_t start, end;
    CHECK(!sprof_unwind_table_function(elf, 0, &start, &end));
    CHECK(!sprof_unwind_table_function(elf, UINT64_MAX - 16, &start, &end));
    elf_end(elf);
    close(fd);
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_finds_function_start),
        UNIT_CASE(test_outside_any_function),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
