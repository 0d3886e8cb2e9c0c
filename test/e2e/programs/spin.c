/* Computes until killed; prints "ready" once its first second of work is
 * done, so a test knows samples have been taken. */
#include <stdio.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static void spin_forever(void)
{
    for (long r = 0;; r++) {
        WORK_LOOP(100, 9);
        if (r == 1000) {
            printf("ready\n");
            fflush(stdout);
        }
    }
}

int main(void)
{
    spin_forever();
    return 0;
}
