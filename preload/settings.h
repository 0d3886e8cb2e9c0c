/* Settings read from SPROF_* environment variables at start-up.
 * NOT async-signal-safe (getenv, snprintf); called once from the constructor. */
#ifndef SPROF_SETTINGS_H
#define SPROF_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

enum sprof_timer_choice {
    SPROF_TIMER_CHOICE_AUTO,    /* perf task-clock, else CPU-time timers */
    SPROF_TIMER_CHOICE_PERF,    /* perf task-clock only */
    SPROF_TIMER_CHOICE_CPUTIME, /* timer_create(CLOCK_THREAD_CPUTIME_ID) */
};

struct sprof_settings {
    char output[4096];          /* SPROF_OUTPUT, made absolute */
    uint32_t frequency_hz;      /* SPROF_FREQ */
    bool quiet;                 /* SPROF_QUIET */
    enum sprof_timer_choice timer; /* SPROF_TIMER */
    uint32_t max_depth;         /* SPROF_DEPTH */
    bool symbolize;             /* SPROF_SYMBOLIZE */
    int signal_number;          /* SPROF_SIGNAL */
    bool children;              /* SPROF_CHILDREN */
    bool kernel;                /* SPROF_KERNEL: sample system calls too */
    bool unblock;               /* SPROF_UNBLOCK: sample threads that block the
                                   sampling signal (signals.c) */
    char warnings[1024];        /* bad values, for one line on stderr */
};

#define SPROF_DEFAULT_FREQUENCY 999u
#define SPROF_MAX_FREQUENCY 20000u
#define SPROF_DEFAULT_DEPTH 256u

/* Fills settings from the environment. A bad value keeps the default and is
 * described in settings->warnings. output_base is the directory a relative
 * SPROF_OUTPUT is taken against. */
void sprof_settings_read(struct sprof_settings *settings, const char *output_base);

#endif
