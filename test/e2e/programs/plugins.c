/* Loads two plugins one after the other, each with dlopen, works in it the
 * same time, and unloads it before loading the next: a loader often puts
 * the second at the addresses the first left. Says whether it did.
 * Usage: plugins FIRST.so SECOND.so */
#include <dlfcn.h>
#include <stdio.h>

#include "work.h"

volatile uint64_t work_sink;

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    void *first_address = NULL;
    for (int i = 1; i <= 2; i++) {
        void *plugin = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
        if (!plugin) {
            fprintf(stderr, "plugins: %s\n", dlerror());
            return 1;
        }
        void (*work)(long) = (void (*)(long))dlsym(plugin, "plugin_work");
        if (!work)
            return 1;
        if (i == 1)
            first_address = (void *)work;
        else
            printf("second plugin at the first's address: %s\n",
                   (void *)work == first_address ? "yes" : "no");
        work(50000L * work_iterations_per_unit); /* about 0.3 s */
        dlclose(plugin);
    }
    return 0;
}
