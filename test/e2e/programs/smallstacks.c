/* Work on small stacks, where the sampling handler has little room.
 *   smallstacks threads: 4 threads on 16 KB stacks (PTHREAD_STACK_MIN
 *     here), each recursing 30 frames deep (about 3 KB) over and over;
 *   smallstacks main: the main thread recursing 100 frames deep, meant to
 *     run under a 128 KB stack limit (prlimit --stack).
 * Prints a result that depends on all the work. */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) static uint64_t recurse(int depth, uint64_t x)
{
    volatile char pad[48];
    pad[0] = (char)x;
    if (depth == 0) {
        for (int i = 0; i < 200; i++)
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        return x + (uint64_t)pad[0];
    }
    return recurse(depth - 1, x ^ (uint64_t)depth) + (uint64_t)pad[0];
}

static uint64_t spin_recursing(int depth, uint64_t seed)
{
    uint64_t x = seed;
    for (long i = 0; i < 200000; i++)
        x = recurse(depth, x);
    return x;
}

static void *thread_main(void *seed)
{
    return (void *)(uintptr_t)spin_recursing(30, (uint64_t)(uintptr_t)seed);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "main") == 0) {
        printf("main: %llx\n", (unsigned long long)spin_recursing(100, 1));
        return 0;
    }
    size_t size = PTHREAD_STACK_MIN > 16384 ? PTHREAD_STACK_MIN : 16384;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pthread_attr_setstacksize(&attr, size) != 0)
        return 2;
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        if (pthread_create(&threads[i], &attr, thread_main, (void *)(uintptr_t)(i + 1)) != 0)
            return 3;
    }
    uint64_t result = 0;
    for (int i = 0; i < 4; i++) {
        void *value;
        pthread_join(threads[i], &value);
        result ^= (uint64_t)(uintptr_t)value;
    }
    printf("threads on %zu-byte stacks: %llx\n", size, (unsigned long long)result);
    return 0;
}
