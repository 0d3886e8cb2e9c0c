/* A library whose constructor installs a signal handler, as many do. The
 * dynamic loader runs the constructors of a program's libraries before
 * those of a preloaded one, so this runs before libsprof.so has started. */
#include <errno.h>
#include <signal.h>
#include <string.h>

int early_sigaction_result = -2;
int early_sigaction_errno;
volatile sig_atomic_t early_handler_ran;

static void on_usr1(int signal_number)
{
    (void)signal_number;
    early_handler_ran = 1;
}

__attribute__((constructor)) static void install_early(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr1;
    sigemptyset(&action.sa_mask);
    early_sigaction_result = sigaction(SIGUSR1, &action, NULL);
    early_sigaction_errno = errno;
}
