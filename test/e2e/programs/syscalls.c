/* About half user time, half system time: rounds of computing and of
 * reading 64 KB blocks from /dev/zero (read_blocks is where the system time
 * is spent). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;
static char block[65536];

__attribute__((noinline)) static long read_blocks(int fd, int count)
{
    long total = 0;
    for (int i = 0; i < count; i++) {
        ssize_t n = read(fd, block, sizeof block);
        if (n <= 0)
            return -1;
        total += n;
    }
    return total;
}

__attribute__((noinline)) static int compute(int units)
{
    WORK_LOOP(units, 5);
    return units;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1600;
    int blocks = argc > 2 ? atoi(argv[2]) : 400;
    int units = argc > 3 ? atoi(argv[3]) : 100;
    int fd = open("/dev/zero", O_RDONLY);
    if (fd < 0) {
        perror("/dev/zero");
        return 1;
    }
    long bytes = 0;
    for (long r = 0; r < rounds; r++) {
        bytes += read_blocks(fd, blocks);
        compute(units);
    }
    close(fd);
    printf("syscalls: %ld bytes\n", bytes);
    return 0;
}
