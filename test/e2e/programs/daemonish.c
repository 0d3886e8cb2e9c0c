/* Does what daemons do to their environment: changes directory, loads and
 * unloads a plugin, closes every descriptor it did not open, and dup2s
 * /dev/null over the ones that stay. Then computes some more. The profile
 * must hold all of it, in a trace where the run started.
 * Usage: daemonish PLUGIN_PATH */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

__attribute__((noinline)) static void before_closing(void)
{
    for (int i = 0; i < 30; i++)
        WORK_LOOP(1000, (uint64_t)i);
}

__attribute__((noinline)) static void after_closing(void)
{
    for (int i = 0; i < 60; i++)
        WORK_LOOP(1000, (uint64_t)i);
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir("/") != 0)
        return 2;
    void *plugin = dlopen(argv[1], RTLD_NOW);
    if (!plugin) {
        fprintf(stderr, "daemonish: %s\n", dlerror());
        return 2;
    }
    void (*plugin_work)(long) = (void (*)(long))dlsym(plugin, "plugin_work");
    for (int i = 0; i < 30; i++)
        plugin_work(1000L * work_iterations_per_unit);
    dlclose(plugin);
    before_closing();

    /* Close everything but stdio, then put /dev/null over what is left. */
    long limit = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < limit && fd < 65536; fd++)
        close((int)fd);
    int null = open("/dev/null", O_RDWR);
    int covered = 0;
    DIR *dir = opendir("/proc/self/fd");
    int fds[256], count = 0;
    struct dirent *entry;
    while (dir && (entry = readdir(dir)) && count < 256) {
        int fd = atoi(entry->d_name);
        if (fd > 2 && fd != null && fd != dirfd(dir))
            fds[count++] = fd;
    }
    if (dir)
        closedir(dir);
    for (int i = 0; i < count; i++)
        covered += dup2(null, fds[i]) == fds[i];
    after_closing();
    printf("daemonish: /dev/null now at fd %d and over %d more\n", null, covered);
    return 0;
}
