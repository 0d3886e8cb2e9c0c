/* What a new program image inherits of SIGPROF: ignored, or blocked, by
 * the program that starts it with posix_spawn, fork and exec, system or
 * popen. Each child is "/bin/sh -c 'kill -PROF $$; echo alive'", which
 * lives if it inherited the signal ignored or blocked. Prints how each
 * child ended.
 * Usage: spawnsig */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char *const child_argv[] = {"sh", "-c", "kill -PROF $$; echo alive", NULL};

static const char *from_status(int status)
{
    if (status == -1)
        return "not started";
    if (WIFSIGNALED(status))
        return WTERMSIG(status) == SIGPROF ? "killed by SIGPROF" : "killed";
    return WEXITSTATUS(status) == 0 ? "lived" : "failed";
}

static const char *ended(pid_t child)
{
    int status = 0;
    if (child <= 0 || waitpid(child, &status, 0) != child)
        return "not started";
    return from_status(status);
}

static void start_both(const char *what)
{
    pid_t child = 0;
    fflush(stdout);
    if (posix_spawn(&child, "/bin/sh", NULL, NULL, child_argv, environ) != 0)
        child = -1;
    printf("%s, posix_spawn: %s; ", what, ended(child));
    fflush(stdout);
    child = fork();
    if (child == 0) {
        execv("/bin/sh", child_argv);
        _exit(127);
    }
    printf("%s, fork and exec: %s; ", what, ended(child));
    fflush(stdout);
    printf("%s, system: %s; ", what, from_status(system(child_argv[2])));
    fflush(stdout);
    FILE *shell = popen(child_argv[2], "r");
    char line[64] = "";
    if (shell && !fgets(line, sizeof line, shell))
        line[0] = 0;
    printf("%s, popen: %s%s\n", what, shell ? from_status(pclose(shell)) : "not started",
           line[0] ? " (read alive)" : "");
    fflush(stdout);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPROF, SIG_IGN);
    start_both("ignored");
    signal(SIGPROF, SIG_DFL);
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    sigprocmask(SIG_BLOCK, &prof, NULL);
    start_both("blocked");
    sigprocmask(SIG_UNBLOCK, &prof, NULL);
    start_both("default");
    return 0;
}
