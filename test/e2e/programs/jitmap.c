/* Runs half of its work in machine code it copies into memory of its own
 * (as a JIT does), and names that code in /tmp/perf-PID.map, perf's format,
 * as node's --perf-basic-prof does. Usage: jitmap [nomap]: prints "done"
 * (or "unsupported" off x86-64) and, on stderr, the map's path; with nomap
 * it writes no map. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static void c_half(void)
{
    WORK_LOOP(5000, 3);
}

#if defined(__x86_64__)
/* count in rdi: 1: dec rdi; jnz 1b; ret */
static const unsigned char spin_code[] = {0x48, 0xff, 0xcf, 0x75, 0xfb, 0xc3};

int main(int argc, char **argv)
{
    bool map = !(argc > 1 && !strcmp(argv[1], "nomap"));
    unsigned char *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED)
        return 2;
    memcpy(code + 64, spin_code, sizeof spin_code);
    if (mprotect(code, 4096, PROT_READ | PROT_EXEC) != 0)
        return 2;
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    if (map) {
        FILE *file = fopen(path, "w");
        if (!file)
            return 2;
        /* An entry the later one replaces, as when a JIT reuses code. */
        fprintf(file, "%lx %x stale_entry\n", (unsigned long)(uintptr_t)(code + 64), 6);
        fprintf(file, "%lx %x LazyCompile:*jitted_spin work.js:1\n",
                (unsigned long)(uintptr_t)(code + 64), 6);
        fclose(file);
    }
    void (*spin)(uint64_t) = (void (*)(uint64_t))(uintptr_t)(code + 64);
    for (int round = 0; round < 20; round++) {
        spin(30000000);
        c_half();
    }
    puts("done");
    /* The map stays after the process, as node's does: the caller removes
     * it (sprof reads it at exit). */
    fprintf(stderr, "map %s\n", path);
    return 0;
}
#else
int main(void)
{
    puts("unsupported");
    return 0;
}
#endif
