/* A process that runs several programs in turn by exec, as shell wrappers
 * and interpreters' shims do: each image spins in image_work for the same
 * time, then execs the next, and the last exits with status 17.
 * Usage: execchain [IMAGES [INDEX]]  (IMAGES in all; INDEX is this one) */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static void image_work(int index)
{
    WORK_LOOP(25000, (uint64_t)index); /* about 0.15 s of CPU */
}

int main(int argc, char **argv)
{
    int images = argc > 1 ? atoi(argv[1]) : 4;
    int index = argc > 2 ? atoi(argv[2]) : 0;
    image_work(index);
    if (index + 1 >= images)
        return 17;
    char count[16], next[16];
    snprintf(count, sizeof count, "%d", images);
    snprintf(next, sizeof next, "%d", index + 1);
    execl("/proc/self/exe", argv[0], count, next, (char *)NULL);
    perror("execchain: exec");
    return 1;
}
