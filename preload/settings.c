#include "settings.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void warn(struct sprof_settings *s, const char *name, const char *value,
                 const char *expected)
{
    size_t used = strlen(s->warnings);
    snprintf(s->warnings + used, sizeof s->warnings - used, "%s%s='%.40s' ignored (%s)",
             used ? "; " : "", name, value, expected);
}

static bool parse_number(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || value < min || value > max)
        return false;
    *out = value;
    return true;
}

static void read_number(struct sprof_settings *s, const char *name, long min, long max,
                        uint32_t *out)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return;
    long value;
    if (parse_number(text, min, max, &value)) {
        *out = (uint32_t)value;
    } else {
        char expected[64];
        snprintf(expected, sizeof expected, "expected an integer %ld..%ld", min, max);
        warn(s, name, text, expected);
    }
}

static void read_bool(struct sprof_settings *s, const char *name, bool *out)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return;
    if (!strcmp(text, "1") || !strcasecmp(text, "true") || !strcasecmp(text, "yes") ||
        !strcasecmp(text, "on"))
        *out = true;
    else if (!strcmp(text, "0") || !strcasecmp(text, "false") || !strcasecmp(text, "no") ||
             !strcasecmp(text, "off"))
        *out = false;
    else
        warn(s, name, text, "expected 1 or 0");
}

static void read_signal(struct sprof_settings *s)
{
    const char *text = getenv("SPROF_SIGNAL");
    if (!text || !*text)
        return;
    const char *name = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;
    long number;
    if (!strcasecmp(name, "PROF"))
        s->signal_number = SIGPROF;
    else if (!strcasecmp(name, "VTALRM"))
        s->signal_number = SIGVTALRM;
    else if (!strncasecmp(name, "RTMIN+", 6) && parse_number(name + 6, 0, SIGRTMAX - SIGRTMIN, &number))
        s->signal_number = SIGRTMIN + (int)number;
    else if (parse_number(text, SIGRTMIN, SIGRTMAX, &number))
        s->signal_number = (int)number;
    else
        warn(s, "SPROF_SIGNAL", text, "expected PROF, VTALRM, RTMIN+N or a real-time signal number");
}

static void read_timer(struct sprof_settings *s)
{
    const char *text = getenv("SPROF_TIMER");
    if (!text || !*text)
        return;
    if (!strcasecmp(text, "auto"))
        s->timer = SPROF_TIMER_CHOICE_AUTO;
    else if (!strcasecmp(text, "perf"))
        s->timer = SPROF_TIMER_CHOICE_PERF;
    else if (!strcasecmp(text, "cputime"))
        s->timer = SPROF_TIMER_CHOICE_CPUTIME;
    else
        warn(s, "SPROF_TIMER", text, "expected auto, perf or cputime");
}

static void read_output(struct sprof_settings *s, const char *base)
{
    const char *text = getenv("SPROF_OUTPUT");
    if (!text || !*text)
        text = "trace.bin";
    int n;
    if (text[0] == '/' || !base)
        n = snprintf(s->output, sizeof s->output, "%s", text);
    else
        n = snprintf(s->output, sizeof s->output, "%s/%s", base, text);
    if (n < 0 || (size_t)n >= sizeof s->output) {
        warn(s, "SPROF_OUTPUT", text, "path too long");
        snprintf(s->output, sizeof s->output, "%s/trace.bin", base ? base : ".");
    }
}

void sprof_settings_read(struct sprof_settings *s, const char *output_base)
{
    memset(s, 0, sizeof *s);
    s->frequency_hz = SPROF_DEFAULT_FREQUENCY;
    s->timer = SPROF_TIMER_CHOICE_AUTO;
    s->max_depth = SPROF_DEFAULT_DEPTH;
    s->symbolize = true;
    s->signal_number = SIGPROF;
    s->children = true;
    s->unblock = true;
    read_output(s, output_base);
    read_number(s, "SPROF_FREQ", 1, SPROF_MAX_FREQUENCY, &s->frequency_hz);
    read_bool(s, "SPROF_QUIET", &s->quiet);
    read_timer(s);
    read_number(s, "SPROF_DEPTH", 1, 1000, &s->max_depth);
    read_bool(s, "SPROF_SYMBOLIZE", &s->symbolize);
    read_signal(s);
    read_bool(s, "SPROF_CHILDREN", &s->children);
    read_bool(s, "SPROF_KERNEL", &s->kernel);
    read_bool(s, "SPROF_UNBLOCK", &s->unblock);
}
