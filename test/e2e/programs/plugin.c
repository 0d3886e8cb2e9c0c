/* A library the daemonish test program loads with dlopen, works in, and
 * unloads before exit: its functions must still be named. */
#include <stdint.h>

volatile uint64_t plugin_sink;

/* Spins for `iterations` turns of the tests' loop (work.h), which the caller
 * has timed. */
void plugin_work(long iterations);

/* Built twice, as two plugins alike but for this name (test plugins): a
 * loader may put the second at the addresses the first left. */
#ifdef SECOND_PLUGIN
#define PLUGIN_LOOP second_plugin_loop
#else
#define PLUGIN_LOOP first_plugin_loop
#endif

__attribute__((noinline)) static void PLUGIN_LOOP(long iterations)
{
    uint64_t x = 7;
    for (long i = 0; i < iterations; i++)
        x = x * 6364136223846793005ULL + (uint64_t)i;
    plugin_sink += x;
}

__attribute__((visibility("default"))) void plugin_work(long iterations)
{
    PLUGIN_LOOP(iterations);
}
