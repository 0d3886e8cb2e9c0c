/* Threads cancelled at any moment of their start, the profiler's included.
 * Usage: cancelled deferred|async: starts 300 threads one after another and
 * cancels each after a varying short spin; a deferred thread sleeps in a
 * loop, an async one switches to asynchronous cancellation and spins.
 * Prints how many joins returned PTHREAD_CANCELED. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile unsigned long sink;

static void *sleeper(void *arg)
{
    for (;;)
        sleep(1);
    return arg;
}

static void *async_spinner(void *arg)
{
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
    for (;;)
        sink++;
    return arg;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    void *(*start)(void *) = strcmp(argv[1], "async") == 0 ? async_spinner : sleeper;
    int cancelled = 0;
    for (int i = 0; i < 300; i++) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, start, NULL) != 0)
            return 1;
        for (unsigned long k = 0; k < (unsigned long)(i % 50) * 2000; k++)
            sink += k;
        pthread_cancel(thread);
        void *result;
        pthread_join(thread, &result);
        cancelled += result == PTHREAD_CANCELED;
    }
    printf("cancelled %d\n", cancelled);
    return 0;
}
