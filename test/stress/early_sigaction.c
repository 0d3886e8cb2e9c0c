/* A signal handler installed by a library's constructor, before
 * libsprof.so's own constructor ran, must be installed and called as
 * without the profiler (libsprof.so interposes sigaction). Run under
 * libsprof.so by stress.py.
 * Exit status: 0 as without the profiler, 1 otherwise. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

extern int early_sigaction_result;
extern int early_sigaction_errno;
extern volatile sig_atomic_t early_handler_ran;

int main(void)
{
    if (early_sigaction_result != 0) {
        fprintf(stderr, "early_sigaction: sigaction in a library constructor returned %d (%s)\n",
                early_sigaction_result, strerror(early_sigaction_errno));
        return 1;
    }
    raise(SIGUSR1);
    if (!early_handler_ran) {
        fprintf(stderr, "early_sigaction: the handler installed in the constructor never ran\n");
        return 1;
    }
    printf("early_sigaction: the constructor's handler was installed and ran\n");
    return 0;
}
