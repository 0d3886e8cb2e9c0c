/* Lists its open descriptors the way programs probe for them (fstat and
 * fcntl(F_GETFD) on every number below the limit, up to 4096), from two
 * threads that have been running a while, then says which number its next
 * open gets. Under sprof the output must be what it is without: sprof's
 * own descriptors (its trace, its perf counters, libunwind's pipe) read as
 * closed to such probes, though /proc/self/fd lists them. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

static void print_open(const char *how, int limit, int (*probe)(int))
{
    printf("%s:", how);
    for (int fd = 0; fd < limit; fd++) {
        if (probe(fd) == 0)
            printf(" %d", fd);
    }
    printf("\n");
}

static int probe_fstat(int fd)
{
    struct stat st;
    return fstat(fd, &st);
}

static int probe_getfd(int fd)
{
    return fcntl(fd, F_GETFD) < 0 ? -1 : 0;
}

static void *spin_a_while(void *unused)
{
    (void)unused;
    WORK_LOOP(20000, 1); /* about 0.2 s */
    return NULL;
}

int main(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, spin_a_while, NULL);
    WORK_LOOP(20000, 2);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    int highest = limit.rlim_cur > 4096 ? 4096 : (int)limit.rlim_cur;
    print_open("fstat", highest, probe_fstat);
    print_open("fcntl", highest, probe_getfd);
    /* What the kernel lists, sprof's included (not compared). */
    int listed = 0;
    DIR *dir = opendir("/proc/self/fd");
    for (struct dirent *entry; dir && (entry = readdir(dir));)
        listed += entry->d_name[0] != '.';
    if (dir)
        closedir(dir);
    printf("listed in /proc/self/fd: %d\n", listed - 1);
    pthread_join(thread, NULL);
    int fd = open("/dev/null", O_RDONLY);
    printf("next open: %d\n", fd);
    return 0;
}
