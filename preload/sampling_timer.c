#include "sampling_timer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sample_handler.h"
#include "sprof/trace_format.h"

/* A task-clock counter on thread tid of this process (0: the caller). */
static int open_task_clock(uint64_t period_ns, bool include_kernel, pid_t tid)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.sample_period = period_ns;
    attr.disabled = 1;
    attr.exclude_kernel = include_kernel ? 0 : 1;
    attr.exclude_hv = 1;
    attr.wakeup_events = 1;
    long fd = syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    return fd < 0 ? -errno : (int)fd;
}

/* Our descriptors: at most a sixteenth of the program's budget, and numbered
 * from the middle of it, away from the low numbers programs expect. */
static _Atomic int perf_descriptors;

int sprof_fd_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY ||
        limit.rlim_cur > 1 << 20)
        return 1 << 20;
    return (int)limit.rlim_cur;
}

int sprof_move_fd_high(int fd, _Atomic int *number_kept)
{
    int limit = sprof_fd_limit();
    /* The system call, not the interposed fcntl: sprof's own EMFILE here
     * must not be taken for the program's (fd_budget.c). */
    long high = syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, limit >= 2048 ? 1024 : limit / 2);
    if (high < 0)
        return fd;
    if (number_kept)
        atomic_store(number_kept, (int)high);
    close(fd);
    return (int)high;
}

/* Serializes arming, disarming and giving back timers. Taken by spinning
 * in normal code; from signal handlers (the program's EMFILE can arise
 * there) only tried. A lock-free flag, not a mutex, for that reason. */
static atomic_flag timers_lock = ATOMIC_FLAG_INIT;

static void lock_timers(void)
{
    while (atomic_flag_test_and_set_explicit(&timers_lock, memory_order_acquire))
        sched_yield();
}

static bool try_lock_timers(void)
{
    return !atomic_flag_test_and_set_explicit(&timers_lock, memory_order_acquire);
}

static void unlock_timers(void)
{
    atomic_flag_clear_explicit(&timers_lock, memory_order_release);
}

void sprof_timers_after_fork_child(void)
{
    /* Another thread of the parent may have held it at fork. */
    atomic_flag_clear(&timers_lock);
}

/* Set once the program ran out of descriptors: from then on no thread
 * takes a perf_event descriptor. */
static _Atomic bool perf_given_up;

/* The size of a counter's one mapped page; 0: no mapping. */
static size_t page_size;
/* The lowest number any counter of ours ever had: a number below it that
 * the program is given cannot be one of ours (see sprof_timers_number_taken). */
static _Atomic int lowest_perf_fd = 1 << 30;

struct counter {
    int fd;
    uint64_t id;
    void *page;
};

/* Opens a counter on thread t, set to signal that thread, not yet
 * enabled; its number is t's perf_fd_changing until installed.
 * Async-signal-safe. Returns 0 or an errno value. */
static int open_counter(struct sprof_thread *t, uint64_t period_ns, bool include_kernel,
                        int signal_number, struct counter *c)
{
    pid_t tid = t->tid;
    int fd = open_task_clock(period_ns, include_kernel, tid);
    if (fd < 0)
        return -fd;
    /* Hidden from the program's probes from here until installed. */
    atomic_store(&t->perf_fd_changing, fd);
    fd = sprof_move_fd_high(fd, &t->perf_fd_changing);
    struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = tid};
    if (fcntl(fd, F_SETFL, O_ASYNC) != 0 || fcntl(fd, F_SETSIG, signal_number) != 0 ||
        fcntl(fd, F_SETOWN_EX, &owner) != 0 || ioctl(fd, PERF_EVENT_IOC_ID, &c->id) != 0 ||
        ioctl(fd, PERF_EVENT_IOC_RESET, 0) != 0) {
        int error = errno;
        syscall(SYS_close, fd);
        atomic_store(&t->perf_fd_changing, -1);
        return error;
    }
    /* The mapping holds the counter open: if the program closes the
     * descriptor behind our back (a raw close_range), the counter goes on
     * counting and signalling this thread. Optional: it counts against
     * perf_event_mlock_kb. */
    c->page = NULL;
    if (page_size) {
        void *page = mmap(NULL, page_size, PROT_READ, MAP_SHARED, fd, 0);
        if (page != MAP_FAILED)
            c->page = page;
    }
    c->fd = fd;
    int lowest = atomic_load(&lowest_perf_fd);
    while (fd < lowest && !atomic_compare_exchange_weak(&lowest_perf_fd, &lowest, fd))
        ;
    return 0;
}

/* Makes c thread t's counter and starts it. Caller holds the timers. */
static int install_counter(struct sprof_thread *t, const struct counter *c)
{
    t->perf_signal_fd = c->fd;
    t->perf_id = c->id;
    t->perf_page = c->page;
    t->last_count = 0;
    atomic_thread_fence(memory_order_seq_cst);
    t->perf_fd = c->fd;
    atomic_store(&t->perf_fd_changing, -1);
    atomic_fetch_add(&perf_descriptors, 1);
    if (ioctl(c->fd, PERF_EVENT_IOC_ENABLE, 0) != 0)
        return errno;
    return 0;
}

static bool counter_is_at(int fd, uint64_t id)
{
    uint64_t found;
    return fd >= 0 && ioctl(fd, PERF_EVENT_IOC_ID, &found) == 0 && found == id;
}

bool sprof_timer_counter_intact(const struct sprof_thread *t)
{
    return counter_is_at(t->perf_fd, t->perf_id);
}

/* Stops and releases t's counter; its descriptor is closed only if it is
 * still ours (the program may have closed it and reused the number). The
 * field is cleared first, so a signal arriving meanwhile is ignored. Caller
 * holds the timers. Async-signal-safe. */
static void release_counter(struct sprof_thread *t)
{
    int fd = t->perf_fd;
    void *page = t->perf_page;
    if (fd < 0)
        return;
    bool ours = counter_is_at(fd, t->perf_id);
    /* Still hidden from the program's fstat and fcntl probes until closed
     * (fd_guard.c), though no longer taken as a live counter. */
    if (ours)
        atomic_store(&t->perf_fd_changing, fd);
    t->perf_fd = -1;
    t->perf_page = NULL;
    atomic_thread_fence(memory_order_seq_cst);
    if (ours) {
        ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
        /* The system call: the interposed close keeps sprof's descriptors. */
        syscall(SYS_close, fd);
    }
    atomic_store(&t->perf_fd_changing, -1);
    if (page)
        munmap(page, page_size);
    atomic_fetch_sub(&perf_descriptors, 1);
}

static int arm_perf(struct sprof_thread *t, uint64_t period_ns, bool include_kernel,
                    int signal_number)
{
    if (atomic_load(&perf_descriptors) >= sprof_fd_limit() / 16)
        return EMFILE;
    struct counter c;
    int error = open_counter(t, period_ns, include_kernel, signal_number, &c);
    if (error)
        return error;
    error = install_counter(t, &c);
    if (error)
        release_counter(t);
    return error;
}

/* The CPU-time clock of any thread of this process, as glibc's
 * pthread_getcpuclockid builds it, so that one thread can arm another's. */
static clockid_t thread_cpu_clock(pid_t tid)
{
    return (clockid_t)(((unsigned)~tid << 3) | 6);
}

/* Arms a CPU-time timer on thread t's clock that signals t. Callable from
 * any thread; async-signal-safe (glibc's timer_create is a plain system
 * call for SIGEV_THREAD_ID). */
static int arm_cputime(struct sprof_thread *t, uint64_t period_ns, int signal_number)
{
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = signal_number;
    /* The handler knows our timers by this value (sample_handler.c). */
    event.sigev_value.sival_ptr = &sprof_sampler;
    event._sigev_un._tid = t->tid;
    timer_t timer;
    if (timer_create(thread_cpu_clock(t->tid), &event, &timer) != 0)
        return errno;
    t->timer = timer;
    t->has_timer = true;
    struct itimerspec spec;
    spec.it_interval.tv_sec = (time_t)(period_ns / 1000000000u);
    spec.it_interval.tv_nsec = (long)(period_ns % 1000000000u);
    spec.it_value = spec.it_interval;
    if (timer_settime(timer, 0, &spec, NULL) != 0) {
        int error = errno;
        timer_delete(timer);
        t->has_timer = false;
        return error;
    }
    return 0;
}

bool sprof_timer_plan_choose(struct sprof_timer_plan *plan, enum sprof_timer_choice choice,
                             bool want_kernel, uint64_t period_ns, int signal_number)
{
    (void)signal_number;
    memset(plan, 0, sizeof *plan);
    long page = sysconf(_SC_PAGESIZE);
    page_size = page > 0 ? (size_t)page : 0;
    if (choice != SPROF_TIMER_CHOICE_CPUTIME) {
        int kernel_error = 0;
        if (want_kernel) {
            int fd = open_task_clock(period_ns, true, 0);
            if (fd >= 0) {
                close(fd);
                plan->timer_kind = SPROF_TIMER_PERF_TASK_CLOCK;
                plan->kernel_sampled = true;
                return true;
            }
            kernel_error = -fd;
        }
        int fd = open_task_clock(period_ns, false, 0);
        if (fd >= 0) {
            close(fd);
            plan->timer_kind = SPROF_TIMER_PERF_TASK_CLOCK;
            plan->kernel_sampled = false;
            if (want_kernel)
                snprintf(plan->notice, sizeof plan->notice,
                         "time in system calls is not sampled: perf_event may not count the "
                         "kernel (%s; perf_event_paranoid is above 1 and CAP_PERFMON is missing); "
                         "SPROF_TIMER=cputime samples it at the kernel tick's rate",
                         strerror(kernel_error));
            else
                snprintf(plan->notice, sizeof plan->notice,
                         "time in system calls is not sampled, so that no sample interrupts one "
                         "(SPROF_KERNEL=1 samples it where permitted, but then blocking calls "
                         "can return early, as with any signal)");
            return true;
        }
        if (choice == SPROF_TIMER_CHOICE_PERF) {
            snprintf(plan->notice, sizeof plan->notice, "perf_event_open refused (%s)",
                     strerror(-fd));
            return false;
        }
        snprintf(plan->notice, sizeof plan->notice,
                 "perf_event_open refused (%s): sampling with CPU-time timers, which fire at "
                 "most once per kernel tick; skipped ticks are weighted in",
                 strerror(-fd));
    }
    plan->timer_kind = SPROF_TIMER_THREAD_CPUTIME;
    plan->kernel_sampled = true;
    return true;
}

_Atomic uint32_t sprof_threads_without_perf;

int sprof_timer_arm(struct sprof_thread *t, const struct sprof_timer_plan *plan,
                    uint64_t period_ns, int signal_number)
{
    lock_timers();
    t->perf_fd = -1;
    t->has_timer = false;
    int error = 0;
    if (plan->timer_kind == SPROF_TIMER_PERF_TASK_CLOCK) {
        error = atomic_load(&perf_given_up)
                    ? EMFILE
                    : arm_perf(t, period_ns, plan->kernel_sampled, signal_number);
        if (error == EMFILE || error == ENFILE)
            /* Out of descriptors (or our share of them): a CPU-time timer
             * needs none. */
            atomic_fetch_add(&sprof_threads_without_perf, 1);
    }
    if (plan->timer_kind != SPROF_TIMER_PERF_TASK_CLOCK || error == EMFILE || error == ENFILE)
        error = arm_cputime(t, period_ns, signal_number);
    unlock_timers();
    return error;
}

/* Replaces t's perf_event counter by a CPU-time timer and closes the
 * descriptor. The timer is in place before perf_fd is cleared, and the
 * handler counts a signal as a sample only for the kind of timer perf_fd
 * says it has (sample_handler.c), so no sample is taken twice. */
static void switch_to_cputime(struct sprof_thread *t, uint64_t period_ns, int signal_number)
{
    /* Even if no timer can be had, the descriptor goes: the program's
     * open must not fail because of us. */
    arm_cputime(t, period_ns, signal_number);
    atomic_thread_fence(memory_order_seq_cst);
    release_counter(t);
    atomic_fetch_add(&sprof_threads_without_perf, 1);
}

_Atomic uint32_t sprof_counters_rearmed;

/* t's counter descriptor is gone (its number now holds something else):
 * ends the old counter, kept alive by its mapping, and arms a new one. */
static void rearm_lost_counter(struct sprof_thread *t, uint64_t period_ns, bool include_kernel,
                               int signal_number)
{
    release_counter(t);
    struct counter c;
    if (!atomic_load(&perf_given_up) &&
        open_counter(t, period_ns, include_kernel, signal_number, &c) == 0) {
        if (install_counter(t, &c) == 0)
            return;
        release_counter(t);
    }
    arm_cputime(t, period_ns, signal_number);
    atomic_fetch_add(&sprof_threads_without_perf, 1);
}

void sprof_timers_number_taken(int fd, uint64_t period_ns, bool include_kernel,
                               int signal_number)
{
    if (fd < atomic_load(&lowest_perf_fd))
        return;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (t->perf_fd != fd || atomic_load(&t->state) != SPROF_STATE_ACTIVE)
            continue;
        if (!try_lock_timers())
            return;
        if (t->perf_fd == fd && !sprof_timer_counter_intact(t)) {
            rearm_lost_counter(t, period_ns, include_kernel, signal_number);
            atomic_fetch_add(&sprof_counters_rearmed, 1);
        }
        unlock_timers();
        return;
    }
}

int sprof_timers_give_back_descriptors(uint64_t period_ns, int signal_number)
{
    atomic_store(&perf_given_up, true);
    if (!try_lock_timers())
        return 0;
    int released = 0;
    for (struct sprof_thread *t = atomic_load(&sprof_threads); t; t = t->next) {
        if (atomic_load(&t->state) == SPROF_STATE_ACTIVE && t->perf_fd >= 0) {
            switch_to_cputime(t, period_ns, signal_number);
            released++;
        }
    }
    unlock_timers();
    return released;
}

void sprof_timer_disarm(struct sprof_thread *t)
{
    lock_timers();
    bool has_timer = t->has_timer;
    t->has_timer = false;
    release_counter(t);
    if (has_timer)
        timer_delete(t->timer);
    unlock_timers();
}

static void set_cputime_timer(timer_t timer, uint64_t period_ns)
{
    struct itimerspec spec;
    spec.it_interval.tv_sec = (time_t)(period_ns / 1000000000u);
    spec.it_interval.tv_nsec = (long)(period_ns % 1000000000u);
    spec.it_value = spec.it_interval;
    timer_settime(timer, 0, &spec, NULL);
}

void sprof_timer_stop_remote(struct sprof_thread *t)
{
    if (sprof_timer_counter_intact(t))
        ioctl(t->perf_fd, PERF_EVENT_IOC_DISABLE, 0);
    if (t->has_timer)
        set_cputime_timer(t->timer, 0);
}

void sprof_timer_resume_remote(struct sprof_thread *t, uint64_t period_ns)
{
    if (sprof_timer_counter_intact(t))
        ioctl(t->perf_fd, PERF_EVENT_IOC_ENABLE, 0);
    if (t->has_timer)
        set_cputime_timer(t->timer, period_ns);
}
