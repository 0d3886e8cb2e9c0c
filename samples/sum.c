/* sum: the course's Solutions 1 and 2, in C.
 *
 * Sums 0 + 1 + ... + (n-1).
 *   --mode slow  inefficient_sum(): first grows an array one append at a time
 *                (realloc as it fills, with CPython's list growth rule), then
 *                loops over it. Time goes to the grow step (grow_list,
 *                list_append, list_resize, realloc and the page faults of the
 *                fresh memory) and to the summing loop (sum_list).
 *   --mode fast  loop_sum(): sums directly in a register, no array; and
 *                closed_form_sum(): n(n-1)/2, computed in 128 bits.
 *   --mode both  runs both and checks they agree.
 *
 * The sum must fit in an unsigned 64-bit integer, which bounds n at
 * 6074001000; the slow mode also needs 8 bytes of memory per number.
 *
 * Exit status: 0 ok, 1 invalid input or usage, 2 out of memory, 3 internal
 * mismatch between the methods (a bug). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample_util.h"

#define PROG "sum"
#define DEFAULT_N 1000000u
/* Largest n with n(n-1)/2 <= 2^64 - 1. */
#define SUM_MAX_N UINT64_C(6074001000)
#define MAX_REPEAT 100000u

static const char usage_text[] =
    "Usage: sum [--mode slow|fast|both] [--repeat R] [--time] [N]\n"
    "Sum the integers 0..N-1 (default N = 1000000).\n"
    "\n"
    "  --mode slow   grow an array by appending (realloc as it grows), then sum it\n"
    "  --mode fast   sum directly in a loop (no array), and by the closed form n(n-1)/2\n"
    "  --mode both   both, checking that they agree (default)\n"
    "  --repeat R    do the computation R times (more profile samples); default 1\n"
    "  --time        also print the time per computation of each method\n"
    "  --max-n       print the largest valid N and exit\n"
    "\n"
    "N must be an integer 0..6074001000: beyond that the sum overflows 64 bits.\n"
    "Exit status: 0 ok, 1 invalid input, 2 out of memory, 3 methods disagree.\n";

/* ---- The slow way: a growable array like a Python list. ---- */

struct list {
    uint64_t *items;
    size_t size;
    size_t allocated;
};

/* CPython's list_resize(): over-allocate by about 1/8 so that appending is
 * amortised O(1), then realloc. */
static SAMPLE_NOINLINE int list_resize(struct list *list, size_t new_size)
{
    size_t new_allocated = (new_size + (new_size >> 3) + 6) & ~(size_t)3;
    if (new_allocated > SIZE_MAX / sizeof(uint64_t))
        return -1;
    uint64_t *items = realloc(list->items, new_allocated * sizeof(uint64_t));
    if (!items)
        return -1;
    list->items = items;
    list->allocated = new_allocated;
    return 0;
}

static SAMPLE_NOINLINE int list_append(struct list *list, uint64_t value)
{
    if (list->size == list->allocated && list_resize(list, list->size + 1) != 0)
        return -1;
    list->items[list->size++] = value;
    return 0;
}

/* The grow step: nums = []; for i in range(n): nums.append(i) */
static SAMPLE_NOINLINE int grow_list(struct list *list, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        if (list_append(list, i) != 0)
            return -1;
    }
    return 0;
}

/* The summing loop: for num in nums: total += num */
static SAMPLE_NOINLINE uint64_t sum_list(const struct list *list)
{
    uint64_t total = 0;
    for (size_t i = 0; i < list->size; i++)
        total += list->items[i];
    return total;
}

static SAMPLE_NOINLINE int inefficient_sum(uint64_t n, uint64_t *result)
{
    struct list nums = {NULL, 0, 0};
    if (grow_list(&nums, n) != 0) {
        fprintf(stderr,
                PROG ": out of memory growing the array to %zu numbers (%.1f MiB); "
                "use --mode fast, which needs no array\n",
                nums.size + 1, (double)(nums.size + 1) * 8.0 / 1048576.0);
        free(nums.items);
        return -1;
    }
    *result = sum_list(&nums);
    free(nums.items);
    return 0;
}

/* ---- The fast ways. ---- */

/* sum(range(n)): add as we count. The empty asm tells the compiler that
 * `total` may change behind its back, so -O2 cannot replace the loop by its
 * closed form (GCC does that for such simple loops) and the loop really runs,
 * once per number, in a register: O(n) time, O(1) memory. */
static SAMPLE_NOINLINE uint64_t loop_sum(uint64_t n)
{
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        total += i;
        __asm__ volatile("" : "+r"(total));
    }
    return total;
}

/* n(n-1)/2 with a 128-bit product, so nothing overflows before the halving. */
static SAMPLE_NOINLINE uint64_t closed_form_sum(uint64_t n)
{
    if (n == 0)
        return 0;
    return (uint64_t)(((unsigned __int128)n * (n - 1)) / 2);
}

/* Would the slow mode's array clearly not fit in this machine's memory? */
static bool array_fits_in_ram(uint64_t n, double *need_gib, double *ram_gib)
{
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    *need_gib = (double)n * 8.0 / (1024.0 * 1024.0 * 1024.0);
    if (pages <= 0 || page_size <= 0)
        return true; /* unknown: let realloc decide */
    *ram_gib = (double)pages * (double)page_size / (1024.0 * 1024.0 * 1024.0);
    return *need_gib < *ram_gib;
}


int main(int argc, char **argv)
{
    double main_start = monotonic_seconds();
    enum sample_mode mode = MODE_BOTH;
    uint64_t n = DEFAULT_N, repeat = 1;
    bool have_n = false, timing = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        int matched;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(arg, "--time")) {
            timing = true;
        } else if (!strcmp(arg, "--max-n")) {
            printf("%" PRIu64 "\n", SUM_MAX_N);
            return 0;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--mode", &value)) != 0) {
            if (matched < 0 || !parse_mode(PROG, value, NULL, NULL, &mode))
                return 1;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--repeat", &value)) != 0) {
            if (matched < 0)
                return 1;
            enum parse_status status = parse_u64(value, MAX_REPEAT, &repeat);
            if (status == PARSE_OK && repeat == 0)
                status = PARSE_TOO_LARGE, repeat = 1; /* reported below as out of range */
            if (status != PARSE_OK) {
                fprintf(stderr, PROG ": invalid --repeat '%s': expected an integer 1..%u\n",
                        value, MAX_REPEAT);
                return 1;
            }
        } else if (arg[0] == '-' && arg[1] && !looks_negative(arg) && strcmp(arg, "--")) {
            fprintf(stderr, PROG ": unknown option '%s'\nTry 'sum --help'.\n", arg);
            return 1;
        } else {
            if (!strcmp(arg, "--")) {
                if (++i >= argc)
                    break;
                arg = argv[i];
            }
            if (have_n) {
                fprintf(stderr, PROG ": only one N may be given (got '%s' after another)\n",
                        arg);
                return 1;
            }
            enum parse_status status = parse_u64(arg, SUM_MAX_N, &n);
            if (status == PARSE_TOO_LARGE) {
                char exact[48];
                uint64_t big;
                if (parse_u64(arg, UINT64_MAX, &big) == PARSE_OK) {
                    unsigned __int128 sum = (unsigned __int128)big * (big - 1) / 2;
                    fprintf(stderr,
                            PROG ": invalid n '%s': too large: the sum 0+1+...+(n-1) = %s "
                            "would overflow a 64-bit unsigned integer (largest valid n is "
                            "%" PRIu64 ")\n",
                            arg, u128_to_string(sum, exact), SUM_MAX_N);
                } else {
                    fprintf(stderr,
                            PROG ": invalid n '%s': too large: not even a 64-bit number, and "
                            "the sum must fit in 64 bits (largest valid n is %" PRIu64 ")\n",
                            arg, SUM_MAX_N);
                }
                return 1;
            }
            if (status != PARSE_OK) {
                report_parse_error(PROG, "n", arg, status);
                return 1;
            }
            have_n = true;
        }
    }

    if (mode & MODE_SLOW) {
        double need = 0, ram = 0;
        if (!array_fits_in_ram(n, &need, &ram)) {
            fprintf(stderr,
                    PROG ": n = %" PRIu64 " is valid, but the slow mode's array would need "
                    "%.1f GiB and this machine has %.1f GiB of RAM; use --mode fast\n",
                    n, need, ram);
            return 2;
        }
    }

    printf("# sum of 0..n-1, n = %" PRIu64 ", mode %s, computed %" PRIu64 " time%s\n", n,
           mode == MODE_SLOW ? "slow" : mode == MODE_FAST ? "fast" : "both", repeat,
           repeat == 1 ? "" : "s");
    uint64_t slow = 0, loop = 0, closed = 0;
    double slow_s = 0, loop_s = 0, closed_s = 0;
    if (mode & MODE_SLOW) {
        double start = monotonic_seconds();
        for (uint64_t r = 0; r < repeat; r++) {
            if (inefficient_sum(n, &slow) != 0)
                return 2;
        }
        slow_s = (monotonic_seconds() - start) / (double)repeat;
        printf("inefficient_sum(%" PRIu64 ") = %" PRIu64 "\n", n, slow);
    }
    if (mode & MODE_FAST) {
        double start = monotonic_seconds();
        for (uint64_t r = 0; r < repeat; r++)
            loop = loop_sum(n);
        loop_s = (monotonic_seconds() - start) / (double)repeat;
        start = monotonic_seconds();
        for (uint64_t r = 0; r < repeat; r++) {
            uint64_t n_seen = n;
            /* Keep the compiler from computing it once for all repetitions. */
            __asm__ volatile("" : "+r"(n_seen));
            closed = closed_form_sum(n_seen);
        }
        closed_s = (monotonic_seconds() - start) / (double)repeat;
        printf("loop_sum(%" PRIu64 ") = %" PRIu64 "\n", n, loop);
        printf("closed_form_sum(%" PRIu64 ") = %" PRIu64 "\n", n, closed);
        if (loop != closed) {
            fprintf(stderr, PROG ": BUG: loop_sum and closed_form_sum disagree\n");
            return 3;
        }
    }
    if (mode == MODE_BOTH && slow != loop) {
        fprintf(stderr, PROG ": BUG: inefficient_sum and loop_sum disagree\n");
        return 3;
    }
    if (timing) {
        if (mode & MODE_SLOW)
            printf("# time per computation: inefficient_sum %.6f s\n", slow_s);
        if (mode & MODE_FAST)
            printf("# time per computation: loop_sum %.6f s, closed_form_sum %.9f s\n", loop_s,
                   closed_s);
    }
    if (timing)
        print_main_figures(main_start);
    if (fflush(stdout) != 0) {
        perror(PROG ": stdout");
        return 1;
    }
    return 0;
}
