/* Runs saved inputs (files, or every file in the folders given) through the
 * fuzz target's code path once each, without libFuzzer: the regression
 * test of inputs that once crashed, with whatever compiler built the
 * project (under sanitizers in a -Db_sanitize build).
 *
 * Usage: fuzz_replay PATH...   Exit status: 0 all ran, 1 an input could not
 * be read or none was found. A crash is the failure it exists to catch. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replayed;

static int replay_file(const char *path)
{
    FILE *file = fopen(path, "rbe");
    if (!file) {
        perror(path);
        return -1;
    }
    uint8_t *data = NULL;
    size_t size = 0, capacity = 0;
    for (;;) {
        if (size == capacity) {
            capacity = capacity ? capacity * 2 : 65536;
            uint8_t *bigger = realloc(data, capacity);
            if (!bigger) {
                fprintf(stderr, "%s: out of memory\n", path);
                free(data);
                fclose(file);
                return -1;
            }
            data = bigger;
        }
        size_t got = fread(data + size, 1, capacity - size, file);
        size += got;
        if (got == 0)
            break;
    }
    int failed = ferror(file);
    fclose(file);
    if (failed) {
        fprintf(stderr, "%s: read error\n", path);
        free(data);
        return -1;
    }
    printf("%s (%zu bytes)\n", path, size);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    replayed++;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    struct dirent **entries;
    int count = scandir(path, &entries, NULL, NULL);
    if (count < 0) {
        perror(path);
        return -1;
    }
    char **names = calloc((size_t)count + 1, sizeof *names);
    int named = 0;
    for (int i = 0; i < count; i++) {
        if (names && entries[i]->d_name[0] != '.' && strcmp(entries[i]->d_name, "README.md"))
            names[named++] = strdup(entries[i]->d_name);
        free(entries[i]);
    }
    free(entries);
    if (!names)
        return -1;
    qsort(names, (size_t)named, sizeof *names, compare_names);
    int status = 0;
    for (int i = 0; i < named; i++) {
        char *child = NULL;
        if (!names[i] || asprintf(&child, "%s/%s", path, names[i]) < 0) {
            status = -1;
        } else if (replay_path(child) != 0) {
            status = -1;
        }
        free(child);
        free(names[i]);
    }
    free(names);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_replay PATH...\n");
        return 1;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (replay_path(argv[i]) != 0)
            status = 1;
    }
    printf("replayed %d inputs\n", replayed);
    if (replayed == 0) {
        fprintf(stderr, "fuzz_replay: no inputs found\n");
        status = 1;
    }
    return status;
}
