/* Thread churn: 10000 short-lived threads (50 at a time), then 200 live at
 * once. Prints the open descriptors and the resident memory before and
 * after, to show nothing leaks, and exits 1 if a thread could not start.
 * Usage: churn [SHORT_LIVED] [LIVE] */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "work.h"

volatile uint64_t work_sink;
static pthread_barrier_t all_live;

static int open_descriptors(void)
{
    int count = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    while (readdir(dir))
        count++;
    closedir(dir);
    return count;
}

static long resident_kb(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (status && fgets(line, sizeof line, status)) {
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    }
    if (status)
        fclose(status);
    return kb;
}

__attribute__((noinline)) static void *short_lived(void *unused)
{
    (void)unused;
    WORK_LOOP(20, 3); /* about 0.12 ms */
    return NULL;
}

__attribute__((noinline)) static void *live(void *unused)
{
    (void)unused;
    pthread_barrier_wait(&all_live);
    WORK_LOOP(600, 4); /* 200 threads: about 0.7 s in all */
    pthread_barrier_wait(&all_live);
    return NULL;
}

int main(int argc, char **argv)
{
    int short_count = argc > 1 ? atoi(argv[1]) : 10000;
    int live_count = argc > 2 ? atoi(argv[2]) : 200;
    int fds_before = open_descriptors();
    long rss_before = resident_kb();
    pthread_t threads[1000];
    for (int done = 0; done < short_count; done += 50) {
        for (int i = 0; i < 50; i++) {
            if (pthread_create(&threads[i], NULL, short_lived, NULL) != 0) {
                perror("pthread_create");
                return 1;
            }
        }
        for (int i = 0; i < 50; i++)
            pthread_join(threads[i], NULL);
    }
    long rss_after_short = resident_kb();
    if (live_count > 1000)
        live_count = 1000;
    pthread_barrier_init(&all_live, NULL, (unsigned)live_count);
    for (int i = 0; i < live_count; i++) {
        if (pthread_create(&threads[i], NULL, live, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < live_count; i++)
        pthread_join(threads[i], NULL);
    printf("churn: fds %d -> %d, rss %ld kB -> %ld kB after short-lived, %ld kB after live\n",
           fds_before, open_descriptors(), rss_before, rss_after_short, resident_kb());
    return 0;
}
