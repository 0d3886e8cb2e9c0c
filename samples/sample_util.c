#include "sample_util.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum parse_status parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    if (!text[0])
        return PARSE_EMPTY;
    const char *p = text;
    if (*p == '-')
        return (p[1] >= '0' && p[1] <= '9') ? PARSE_NEGATIVE : PARSE_NOT_NUMBER;
    if (*p == '+')
        p++;
    if (!*p)
        return PARSE_NOT_NUMBER;
    uint64_t value = 0;
    bool too_large = false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return PARSE_NOT_NUMBER;
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10)
            too_large = true; /* keep scanning: "99999999999999999999x" is not a number */
        else
            value = value * 10 + digit;
    }
    if (too_large || value > max)
        return PARSE_TOO_LARGE;
    *out = value;
    return PARSE_OK;
}

bool report_parse_error(const char *prog, const char *what, const char *text,
                        enum parse_status status)
{
    const char *reason = "not a valid number";
    switch (status) {
    case PARSE_EMPTY:
        reason = "empty; expected a non-negative integer";
        break;
    case PARSE_NEGATIVE:
        reason = "negative; expected a non-negative integer";
        break;
    case PARSE_NOT_NUMBER:
        reason = "not an integer; expected a non-negative integer such as 10";
        break;
    case PARSE_TOO_LARGE:
        reason = "too large";
        break;
    case PARSE_OK:
        break;
    }
    fprintf(stderr, "%s: invalid %s '%s': %s\n", prog, what, text, reason);
    return false;
}

int option_value(int argc, char **argv, int *i, const char *prog, const char *name,
                 const char **value)
{
    const char *arg = argv[*i];
    size_t length = strlen(name);
    if (strncmp(arg, name, length) != 0)
        return 0;
    if (arg[length] == '=') {
        *value = arg + length + 1;
        return 1;
    }
    if (arg[length] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: option %s needs a value\n", prog, name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

bool looks_negative(const char *text)
{
    return text[0] == '-' && text[1] >= '0' && text[1] <= '9';
}

double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void print_main_figures(double main_start)
{
    double wall = monotonic_seconds() - main_start;
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) {
        printf("# main(): wall %.3f s\n", wall);
        return;
    }
    double user = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6;
    double system = (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
    printf("# main(): wall %.3f s, CPU %.3f s (user %.3f s, system %.3f s), peak RSS %.1f MiB\n",
           wall, user + system, user, system, (double)usage.ru_maxrss / 1024.0);
}

const char *u128_to_string(unsigned __int128 value, char *buffer)
{
    char digits[40];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(value % 10));
        value /= 10;
    } while (value);
    for (int k = 0; k < n; k++)
        buffer[k] = digits[n - 1 - k];
    buffer[n] = '\0';
    return buffer;
}

bool parse_mode(const char *prog, const char *value, const char *slow_alias,
                const char *fast_alias, enum sample_mode *mode)
{
    if (!strcmp(value, "slow") || (slow_alias && !strcmp(value, slow_alias)))
        *mode = MODE_SLOW;
    else if (!strcmp(value, "fast") || (fast_alias && !strcmp(value, fast_alias)))
        *mode = MODE_FAST;
    else if (!strcmp(value, "both"))
        *mode = MODE_BOTH;
    else {
        fprintf(stderr, "%s: invalid --mode '%s' (use slow, fast or both)\n", prog, value);
        return false;
    }
    return true;
}
