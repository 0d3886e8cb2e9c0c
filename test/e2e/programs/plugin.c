/* A library the daemonish test program loads with dlopen, works in, and
 * unloads before exit: its functions must still be named. */
#include <stdint.h>

#include "work.h"

volatile uint64_t plugin_sink;

void plugin_work(int units);

__attribute__((visibility("default"))) void plugin_work(int units)
{
    uint64_t x = 7;
    for (long i = 0; i < (long)units * 4000L; i++)
        x = x * 6364136223846793005ULL + (uint64_t)i;
    plugin_sink += x;
}
