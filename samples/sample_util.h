/* Small helpers shared by the sample programs: strict number parsing,
 * command-line option matching and clocks. */
#ifndef SPROF_SAMPLE_UTIL_H
#define SPROF_SAMPLE_UTIL_H

#include <stdbool.h>
#include <stdint.h>

/* Keeps a function out of line and unchanged (no .isra/.constprop clones)
 * so the profile names it. */
#if defined(__clang__)
#define SAMPLE_NOINLINE __attribute__((noinline))
#else
#define SAMPLE_NOINLINE __attribute__((noinline, noclone))
#endif

enum parse_status {
    PARSE_OK,
    PARSE_EMPTY,      /* "" */
    PARSE_NEGATIVE,   /* "-3" */
    PARSE_NOT_NUMBER, /* "abc", "3.5", "12x", " 7" */
    PARSE_TOO_LARGE,  /* more than max (or than 2^64-1) */
};

/* Parses a whole decimal number 0..max ("+" allowed in front, nothing else:
 * no spaces, no sign but '+', no trailing characters). */
enum parse_status parse_u64(const char *text, uint64_t max, uint64_t *out);

/* Prints "PROG: invalid WHAT 'TEXT': <reason>" for the non-PARSE_TOO_LARGE
 * errors. Returns false so a caller can write `return report_parse(...)`. */
bool report_parse_error(const char *prog, const char *what, const char *text,
                        enum parse_status status);

/* Matches argv[*i] against "--name" or "--name=value". Returns 1 and sets
 * *value when matched (taking argv[*i + 1] for the separate form and
 * advancing *i), 0 when argv[*i] is another argument, -1 (after printing an
 * error) when the value is missing. */
int option_value(int argc, char **argv, int *i, const char *prog, const char *name,
                 const char **value);

/* True when text looks like a negative number ("-5"), which the programs
 * take as a (rejected) value rather than as an unknown option. */
bool looks_negative(const char *text);

/* Which versions a sample runs: --mode slow|fast|both. */
enum sample_mode { MODE_SLOW = 1, MODE_FAST = 2, MODE_BOTH = 3 };

/* Parses a --mode value: slow, fast or both, or the given aliases for slow
 * and fast (NULL for none). Prints one line and returns false if invalid. */
bool parse_mode(const char *prog, const char *value, const char *slow_alias,
                const char *fast_alias, enum sample_mode *mode);

double monotonic_seconds(void);
double process_cpu_seconds(void);

/* Prints "# main(): wall W s, CPU C s (user U s, system S s), peak RSS R MiB"
 * to stdout: wall since main_start (a monotonic_seconds() value taken at the
 * top of main), CPU and peak RSS of the whole process so far (getrusage).
 * Called at the end of main, so a profiler's exit work is not included. */
void print_main_figures(double main_start);

/* Formats an unsigned 128-bit number in decimal into buffer (>= 40 bytes). */
const char *u128_to_string(unsigned __int128 value, char *buffer);

#endif
