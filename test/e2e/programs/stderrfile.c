/* Opens the file it is given for writing, works a while, and writes into it
 * which descriptor it got. Started with fd 2 closed, it gets fd 2: sprof's
 * line at exit must not land in that file.
 * Usage: stderrfile PATH */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return 1;
    WORK_LOOP(40000, 1); /* about 0.25 s */
    dprintf(fd, "fd=%d\n", fd);
    return 0; /* left open, as programs do: exit closes it */
}
