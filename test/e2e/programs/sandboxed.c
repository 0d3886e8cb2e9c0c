/* A program that works, enters a seccomp sandbox, and works on in it.
 * Usage: sandboxed strict|filter|syscall:
 *   strict   prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT): only read, write,
 *            exit and sigreturn are allowed; exits 7 with SYS_exit;
 *   filter   prctl with a filter allowing a few calls (not getpid, not
 *            rt_sigprocmask), any other killing the process; exits 5;
 *   syscall  the same filter through syscall(SYS_seccomp), as libseccomp
 *            sets it; exits 5.
 * Prints the work's result before and inside the sandbox. */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "work.h"

volatile uint64_t work_sink;

#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1), \
                  BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static void say(const char *when)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d\n", when, work_sink != 0);
    if (write(1, line, (size_t)n) != n)
        syscall(SYS_exit, 3);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    WORK_LOOP(20000, 1);
    say("before");
    if (strcmp(argv[1], "strict") == 0) {
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
            return 2;
        WORK_LOOP(20000, 2);
        say("inside");
        syscall(SYS_exit, 7);
    }
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        ALLOW(SYS_read), ALLOW(SYS_write), ALLOW(SYS_exit), ALLOW(SYS_exit_group),
        ALLOW(SYS_rt_sigreturn), ALLOW(SYS_brk), ALLOW(SYS_mmap), ALLOW(SYS_munmap),
        ALLOW(SYS_futex), ALLOW(SYS_clock_gettime), ALLOW(SYS_fstat), ALLOW(SYS_newfstatat),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return 2;
    long set = strcmp(argv[1], "syscall") == 0
                   ? syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program)
                   : prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
    if (set != 0)
        return 2;
    WORK_LOOP(20000, 2);
    say("inside");
    return 5;
}
