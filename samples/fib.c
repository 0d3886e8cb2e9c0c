/* fib: the course's memoization example, in C.
 *
 *   --mode slow  fib_naive(): the plain double recursion, about 2*fib(n+1)
 *                calls, exponential time.
 *   --mode fast  fib_memo(): the same recursion behind a bounded LRU table
 *                (Python's @lru_cache(maxsize=128)): at most 2n+1 calls.
 *   --mode both  both, checking that they agree (default).
 *
 * Every computation starts from an empty cache, so call counts and times are
 * those of one fib(n), not of a warm cache (unless --keep-cache).
 *
 * Exit status: 0 ok, 1 invalid input or usage, 3 the modes disagree (a bug). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fib_core.h"
#include "sample_util.h"

#define PROG "fib"
#define DEFAULT_N 35u
#define MAX_ARGS 128
#define MAX_REPEAT 1000000u
/* Above this the naive recursion takes minutes or more: warn. */
#define NAIVE_WARN_N 45u

static const char usage_text[] =
    "Usage: fib [--mode slow|fast|both] [--count-calls] [--cache-size K] [--keep-cache]\n"
    "           [--repeat R] [--time] [N]...\n"
    "Print fib(N) for each N (default 35).\n"
    "\n"
    "  --mode slow      naive recursion (fib_naive)\n"
    "  --mode fast      recursion with a bounded LRU cache (fib_memo)\n"
    "  --mode both      both, checking that they agree (default)\n"
    "  --count-calls    print how many calls of the fib function one fib(N) made\n"
    "  --cache-size K   LRU cache entries, 0..128 (default 128, as lru_cache(maxsize=128))\n"
    "  --repeat R       compute each fib(N) R times, each from an empty cache\n"
    "                   (unless --keep-cache)\n"
    "  --keep-cache     keep the cache from one N to the next (as the Python function's\n"
    "                   cache lives on between calls); counts are still per fib(N)\n"
    "  --time           print the time per computation\n"
    "\n"
    "N must be an integer 0..93: fib(94) does not fit in 64 bits.\n"
    "Exit status: 0 ok, 1 invalid input, 3 the modes disagree.\n";


static bool parse_n(const char *text, unsigned *n)
{
    uint64_t value;
    enum parse_status status = parse_u64(text, FIB_MAX_N, &value);
    if (status == PARSE_TOO_LARGE) {
        fprintf(stderr,
                PROG ": invalid n '%s': too large: fib(n) for n > %u overflows a 64-bit "
                "unsigned integer (fib(93) = 12200160415121876738 is the largest that "
                "fits; fib(94) = 19740274219868223167 does not)\n",
                text, FIB_MAX_N);
        return false;
    }
    if (status != PARSE_OK)
        return report_parse_error(PROG, "n", text, status);
    *n = (unsigned)value;
    return true;
}

int main(int argc, char **argv)
{
    double main_start = monotonic_seconds();
    enum sample_mode mode = MODE_BOTH;
    bool count_calls = false, timing = false, keep_cache = false;
    uint64_t cache_size = FIB_CACHE_DEFAULT, repeat = 1;
    unsigned ns[MAX_ARGS];
    size_t count = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        int matched;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(arg, "--count-calls")) {
            count_calls = true;
        } else if (!strcmp(arg, "--time")) {
            timing = true;
        } else if (!strcmp(arg, "--keep-cache")) {
            keep_cache = true;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--mode", &value)) != 0) {
            if (matched < 0 || !parse_mode(PROG, value, "naive", "memo", &mode))
                return 1;
        } else if ((matched = option_value(argc, argv, &i, PROG, "--cache-size", &value)) !=
                   0) {
            if (matched < 0)
                return 1;
            if (parse_u64(value, FIB_CACHE_MAX, &cache_size) != PARSE_OK) {
                fprintf(stderr, PROG ": invalid --cache-size '%s': expected an integer 0..%u\n",
                        value, FIB_CACHE_MAX);
                return 1;
            }
        } else if ((matched = option_value(argc, argv, &i, PROG, "--repeat", &value)) != 0) {
            if (matched < 0)
                return 1;
            if (parse_u64(value, MAX_REPEAT, &repeat) != PARSE_OK || repeat == 0) {
                fprintf(stderr, PROG ": invalid --repeat '%s': expected an integer 1..%u\n",
                        value, MAX_REPEAT);
                return 1;
            }
        } else if (arg[0] == '-' && arg[1] && !looks_negative(arg) && strcmp(arg, "--")) {
            fprintf(stderr, PROG ": unknown option '%s'\nTry 'fib --help'.\n", arg);
            return 1;
        } else {
            if (!strcmp(arg, "--")) {
                if (++i >= argc)
                    break;
                arg = argv[i];
            }
            if (count == MAX_ARGS) {
                fprintf(stderr, PROG ": at most %d values of N at a time\n", MAX_ARGS);
                return 1;
            }
            if (!parse_n(arg, &ns[count]))
                return 1;
            count++;
        }
    }
    if (count == 0)
        ns[count++] = DEFAULT_N;

    if (mode & MODE_SLOW) {
        for (size_t k = 0; k < count; k++) {
            if (ns[k] > NAIVE_WARN_N) {
                /* The naive recursion makes 2*fib(n+1) - 1 calls. */
                double calls = 2.0 * (pow((1 + sqrt(5.0)) / 2, ns[k] + 1) / sqrt(5.0)) - 1;
                fprintf(stderr,
                        PROG ": warning: naive fib(%u) makes about %.2g calls and will take a "
                        "very long time; --mode fast does it in %u calls\n",
                        ns[k], calls, 2 * ns[k]);
            }
        }
    }

    struct fib_cache cache;
    fib_cache_init(&cache, (unsigned)cache_size);
    int status = 0;
    for (size_t k = 0; k < count; k++) {
        unsigned n = ns[k];
        uint64_t naive = 0, memo = 0, naive_calls = 0;
        struct fib_memo_counts counts = {0, 0};
        uint64_t hits = 0, evictions = 0;
        double naive_s = 0, memo_s = 0;
        if (mode & MODE_SLOW) {
            double start = monotonic_seconds();
            for (uint64_t r = 0; r < repeat; r++) {
                fib_naive_calls = 0;
                naive = fib_naive(n);
                naive_calls = fib_naive_calls;
            }
            naive_s = (monotonic_seconds() - start) / (double)repeat;
            printf("fib_naive(%u) = %" PRIu64 "\n", n, naive);
            if (count_calls)
                printf("fib_naive(%u) calls = %" PRIu64 "\n", n, naive_calls);
        }
        if (mode & MODE_FAST) {
            double start = monotonic_seconds();
            uint64_t hits_before = 0, evictions_before = 0;
            for (uint64_t r = 0; r < repeat; r++) {
                if (!keep_cache)
                    fib_cache_clear(&cache);
                hits_before = cache.hits;
                evictions_before = cache.evictions;
                counts = (struct fib_memo_counts){0, 0};
                memo = fib_memo(&cache, n, &counts);
            }
            memo_s = (monotonic_seconds() - start) / (double)repeat;
            hits = cache.hits - hits_before;
            evictions = cache.evictions - evictions_before;
            printf("fib_memo(%u) = %" PRIu64 "\n", n, memo);
            if (count_calls)
                printf("fib_memo(%u) calls = %" PRIu64 " (cache misses %" PRIu64
                       ", hits %" PRIu64 ", evictions %" PRIu64 ", cache size %u)\n",
                       n, counts.calls, counts.misses, hits, evictions, cache.capacity);
        }
        if (mode == MODE_BOTH && naive != memo) {
            fprintf(stderr, PROG ": BUG: fib_naive(%u) and fib_memo(%u) disagree\n", n, n);
            status = 3;
        }
        if (timing) {
            if (mode & MODE_SLOW)
                printf("# time per computation: fib_naive(%u) %.9f s\n", n, naive_s);
            if (mode & MODE_FAST)
                printf("# time per computation: fib_memo(%u) %.9f s\n", n, memo_s);
        }
    }
    fib_cache_destroy(&cache);
    if (timing)
        print_main_figures(main_start);
    if (fflush(stdout) != 0) {
        perror(PROG ": stdout");
        return 1;
    }
    return status;
}
