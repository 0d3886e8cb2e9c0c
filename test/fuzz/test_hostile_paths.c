/* A trace names the files of its modules, and sprof-analyze opens them to
 * name addresses the trace leaves unnamed. A hostile trace may name
 * anything: a FIFO (whose open blocks until a writer comes, which is
 * never), a device, a directory. sprof-analyze must still finish, and
 * name those addresses module+offset.
 *
 * Usage: test_hostile_paths SPROF_ANALYZE special|fifo */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sprof/trace_format.h"
#include "unit.h"

#define TIME_LIMIT_S 10

static const char *analyzer;
static char directory[64];

static void remove_directory(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/fifo", directory);
    unlink(path);
    rmdir(directory);
}

/* Runs sprof-analyze on a trace whose one module is at module_path;
 * fails if it runs past the time limit or exits other than 0. */
static void analyze_with_module(const char *module_path)
{
    printf("  module at %s\n", module_path);
    fflush(stdout);
    struct trace_builder tb;
    tb_init(&tb, 31, 800, SPROF_PROCESS_ROOT);
    tb_module(&tb, 0, module_path, 0x400000, 0x400000, 0x500000);
    tb_stack(&tb, 1, 0, "0x400100;0x400200");
    tb_samples(&tb, 800, 1, 5, 5000000);
    tb_finish(&tb, 5, 5000000);
    char trace[64];
    tb_write(&tb, trace);
    tb_free(&tb);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        execl(analyzer, analyzer, "--format", "csv", trace, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    for (int waited_ms = 0;; waited_ms += 50) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        CHECK(done >= 0);
        if (done == pid)
            break;
        if (waited_ms >= TIME_LIMIT_S * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "sprof-analyze still ran after %d s with a module at %s\n",
                    TIME_LIMIT_S, module_path);
            CHECK(!"sprof-analyze hung on a module path");
        }
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

static void test_special_files(void)
{
    analyze_with_module("/dev/zero");
    analyze_with_module("/dev/null");
    analyze_with_module("/proc/self/mem");
    analyze_with_module(directory);
}

static void test_fifo(void)
{
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/fifo", directory);
    CHECK(mkfifo(fifo, 0600) == 0);
    analyze_with_module(fifo);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "special") && strcmp(argv[2], "fifo"))) {
        fprintf(stderr, "usage: test_hostile_paths SPROF_ANALYZE special|fifo\n");
        return 2;
    }
    analyzer = argv[1];
    snprintf(directory, sizeof directory, "/tmp/sprof-paths-XXXXXX");
    if (!mkdtemp(directory)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    atexit(remove_directory);
    static const struct unit_case special[] = {UNIT_CASE(test_special_files)};
    static const struct unit_case fifo[] = {UNIT_CASE(test_fifo)};
    if (!strcmp(argv[2], "special"))
        return unit_run(special, 1);
    return unit_run(fifo, 1);
}
