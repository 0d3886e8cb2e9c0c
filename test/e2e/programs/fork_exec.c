/* Forks children that compute a little (so a sample is due) and then exec
 * a program, or exit: none may die of the profiler's signal, and each must
 * exit with the status it chose. Prints how many were killed; exits 1 if
 * any child did not end as expected.
 * Usage: fork_exec PROGRAM [CHILDREN] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

int main(int argc, char **argv)
{
    const char *program = argc > 1 ? argv[1] : "/bin/true";
    int children = argc > 2 ? atoi(argv[2]) : 20;
    int killed = 0, wrong = 0;
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            WORK_LOOP(200 + 50 * (i % 4), (uint64_t)i); /* about 1.2-2.1 ms of CPU */
            if (i % 3 == 2)
                _exit(7);
            if (i % 3 == 1)
                execlp(program, program, (char *)NULL);
            else
                execl(program, program, (char *)NULL);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid) {
            perror("waitpid");
            return 1;
        }
        int expected = i % 3 == 2 ? 7 : 0;
        if (WIFSIGNALED(status)) {
            killed++;
            fprintf(stderr, "child %d killed by signal %d\n", i, WTERMSIG(status));
        } else if (WEXITSTATUS(status) != expected) {
            wrong++;
            fprintf(stderr, "child %d exited %d, expected %d\n", i, WEXITSTATUS(status), expected);
        }
    }
    printf("fork_exec: %d of %d children killed, %d exited wrongly\n", killed, children, wrong);
    return killed || wrong ? 1 : 0;
}
