/* Computes inside dl_iterate_phdr's callback (the loader's lock held) for
 * about 60% of its work, and outside it for the rest, while a second
 * thread computes too. Prints whether every walk saw the objects.
 * Usage: loaderwalk */
#include <link.h>
#include <pthread.h>
#include <stdio.h>

#include "work.h"

volatile uint64_t work_sink;
static volatile int done;

__attribute__((noinline)) static int inside_walk(struct dl_phdr_info *info, size_t size,
                                                 void *data)
{
    (void)info;
    (void)size;
    int *objects = data;
    if ((*objects)++ == 0)
        WORK_LOOP(60, 3);
    return 0;
}

__attribute__((noinline)) static void outside_walk(void)
{
    WORK_LOOP(40, 4);
}

__attribute__((noinline)) static void *alongside(void *arg)
{
    (void)arg;
    while (!done)
        WORK_LOOP(10, 5);
    return NULL;
}

int main(void)
{
    pthread_t other;
    if (pthread_create(&other, NULL, alongside, NULL) != 0)
        return 1;
    int short_walks = 0;
    for (int round = 0; round < 2000; round++) {
        int objects = 0;
        dl_iterate_phdr(inside_walk, &objects);
        short_walks += objects < 2;
        outside_walk();
    }
    done = 1;
    pthread_join(other, NULL);
    printf("walked %s\n", short_walks == 0 ? "every object each round" : "short");
    return 0;
}
