/* Two threads work the same time, meet at a barrier, and both call exit(3)
 * at once: the process ends with status 3 either way, and the trace must
 * still get its end (summary) from whichever thread writes it. */
#include <pthread.h>
#include <stdlib.h>

#include "work.h"

volatile uint64_t work_sink;
static pthread_barrier_t both_done;

static void *worker(void *unused)
{
    (void)unused;
    WORK_LOOP(30000, 1); /* about 0.2 s */
    pthread_barrier_wait(&both_done);
    exit(3);
}

int main(void)
{
    pthread_t thread;
    pthread_barrier_init(&both_done, NULL, 2);
    pthread_create(&thread, NULL, worker, NULL);
    WORK_LOOP(30000, 2);
    pthread_barrier_wait(&both_done);
    exit(3);
}
