#include "module_list.h"

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "profiler.h"
#include "sample_handler.h"
#include "signals.h"
#include "trace_codec.h"

struct scan {
    struct sprof_module_list *list;
    bool counters_checked; /* the loader's counters were looked at */
    bool again;            /* a later pass: the counters say nothing */
    /* New objects, copied out of the loader's lock: nothing is allocated
     * inside it (see add_span). */
    struct pending_module *pending;
    size_t pending_count;
    bool more; /* pending filled up: another pass */
};

#define PENDING_MAX 8

struct pending_module {
    struct sprof_module module; /* all but path and id */
    bool named;                 /* dlpi_name was not empty */
    char name[4096];
};

static void read_build_id(const struct dl_phdr_info *info, struct sprof_module *m)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *at = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = at + ph->p_memsz;
        while (at + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)at;
            size_t name_size = (note->n_namesz + 3u) & ~3u;
            size_t desc_size = (note->n_descsz + 3u) & ~3u;
            const uint8_t *name = at + sizeof *note;
            const uint8_t *desc = name + name_size;
            if (desc + desc_size > end)
                break;
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                memcmp(name, "GNU", 4) == 0 && note->n_descsz <= SPROF_BUILD_ID_MAX) {
                memcpy(m->build_id, desc, note->n_descsz);
                m->build_id_size = note->n_descsz;
                return;
            }
            at = desc + desc_size;
        }
    }
}

static char *module_path(const char *name, bool *has_file)
{
    char buffer[4096];
    *has_file = true;
    if (!name || !*name) {
        ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
        if (n > 0) {
            buffer[n] = '\0';
            return strdup(buffer);
        }
        *has_file = false;
        return strdup("[main program]");
    }
    if (name[0] == '/' || access(name, R_OK) == 0)
        return strdup(name);
    /* linux-vdso.so.1 and the like: in memory only. */
    *has_file = false;
    size_t length = strlen(name);
    char *path = malloc(length + 3);
    if (path) {
        path[0] = '[';
        memcpy(path + 1, name, length);
        path[length + 1] = ']';
        path[length + 2] = '\0';
    }
    return path;
}

static bool already_recorded(const struct sprof_module_list *list, const char *name,
                             uint64_t bias, uint64_t start)
{
    for (size_t i = list->count; i-- > 0;) {
        const struct sprof_module *m = &list->modules[i];
        if (m->load_bias == bias && m->start == start) {
            /* The same object if the name agrees; dlopen can reuse ranges. */
            return !name || !*name || !m->has_file || strcmp(m->path, name) == 0 ||
                   name[0] != '/';
        }
    }
    return false;
}

static void write_module_record(struct sprof_encoder *enc, const struct sprof_module *m)
{
    sprof_encoder_begin_record(enc, SPROF_REC_MODULE);
    sprof_encoder_u32(enc, m->id);
    sprof_encoder_u32(enc, m->build_id_size);
    sprof_encoder_u64(enc, m->load_bias);
    sprof_encoder_u64(enc, m->start);
    sprof_encoder_u64(enc, m->end);
    sprof_encoder_bytes(enc, m->build_id, m->build_id_size);
    sprof_encoder_string(enc, m->path);
    sprof_encoder_end_record(enc);
}

/* The lowest and highest address of an object's loadable segments. */
static bool object_span(const struct dl_phdr_info *info, uintptr_t *start, uintptr_t *end)
{
    *start = UINTPTR_MAX;
    *end = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t low = info->dlpi_addr + ph->p_vaddr;
        if (low < *start)
            *start = low;
        if (low + ph->p_memsz > *end)
            *end = low + ph->p_memsz;
    }
    return *start < *end;
}

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    struct scan *scan = data;
    struct sprof_module_list *list = scan->list;
    if (!scan->counters_checked &&
        size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        scan->counters_checked = true;
        if (!scan->again && list->scanned && info->dlpi_adds == list->seen_adds &&
            info->dlpi_subs == list->seen_subs)
            return 1;
        list->seen_adds = info->dlpi_adds;
        list->seen_subs = info->dlpi_subs;
    }
    uintptr_t start, end;
    if (!object_span(info, &start, &end) ||
        already_recorded(list, info->dlpi_name, info->dlpi_addr, start))
        return 0;
    if (scan->pending_count == PENDING_MAX) {
        scan->more = true;
        return 1;
    }
    struct pending_module *p = &scan->pending[scan->pending_count++];
    memset(&p->module, 0, sizeof p->module);
    p->module.load_bias = info->dlpi_addr;
    p->module.start = start;
    p->module.end = end;
    read_build_id(info, &p->module);
    p->named = info->dlpi_name && *info->dlpi_name;
    size_t length = p->named ? strnlen(info->dlpi_name, sizeof p->name - 1) : 0;
    memcpy(p->name, p->named ? info->dlpi_name : "", length);
    p->name[length] = '\0';
    return 0;
}

/* Adds a module found by a pass, and writes its record. */
static void record_module(struct sprof_module_list *list, struct sprof_encoder *enc,
                          const struct pending_module *p)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 32;
        struct sprof_module *modules = realloc(list->modules, capacity * sizeof *modules);
        if (!modules)
            return;
        list->modules = modules;
        list->capacity = capacity;
    }
    struct sprof_module *m = &list->modules[list->count];
    *m = p->module;
    m->path = module_path(p->named ? p->name : NULL, &m->has_file);
    if (!m->path)
        return;
    m->id = (uint32_t)list->count;
    list->count++;
    write_module_record(enc, m);
}

void sprof_module_list_update(struct sprof_module_list *list, struct sprof_encoder *enc)
{
    struct pending_module *pending = malloc(PENDING_MAX * sizeof *pending);
    if (!pending)
        return;
    for (bool again = false;; again = true) {
        struct scan scan = {.list = list, .again = again, .pending = pending};
        /* With the sampling signal blocked: a sample taken inside the
         * loader's lock could make libunwind call into the loader again,
         * and hang. */
        sigset_t old;
        sprof_signals_hold_sampling(&old);
        dl_iterate_phdr(visit, &scan);
        sprof_signals_release_sampling(&old);
        list->scanned = true;
        for (size_t i = 0; i < scan.pending_count; i++)
            record_module(list, enc, &pending[i]);
        if (!scan.more)
            break;
    }
    free(pending);
}

struct code_search {
    const char *name;
    uintptr_t address;
    uintptr_t *range;
};

static int find_code_segment(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const struct code_search *search = data;
    if (search->name) {
        const char *slash = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
        const char *file = slash ? slash + 1 : info->dlpi_name;
        if (!file || strncmp(file, search->name, strlen(search->name)) != 0)
            return 0;
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) &&
            (search->name || (search->address >= start && search->address - start < ph->p_memsz))) {
            search->range[0] = start;
            search->range[1] = start + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

bool sprof_code_segment(const char *name, uintptr_t address, uintptr_t range[2])
{
    struct code_search search = {name, address, range};
    return dl_iterate_phdr(find_code_segment, &search) != 0;
}


/* No allocation inside dl_iterate_phdr: it holds the loader's lock, and a
 * thread sampled inside malloc waits for that lock in its handler
 * (libunwind calls dl_iterate_phdr) while holding malloc's. */
struct span_fill {
    struct sprof_object_spans *spans;
    size_t capacity;
};

static int count_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info, (void)size;
    (*(size_t *)data)++;
    return 0;
}

static int add_span(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct span_fill *fill = data;
    uintptr_t start, end;
    if (fill->spans->count == fill->capacity)
        return 1;
    if (object_span(info, &start, &end))
        fill->spans->spans[fill->spans->count++] =
            (struct sprof_object_span){info->dlpi_addr, start, end};
    return 0;
}

void sprof_object_spans_take(struct sprof_object_spans *spans)
{
    spans->count = 0;
    spans->spans = NULL;
    if (!atomic_load(&sprof.active))
        return;
    sigset_t old;
    size_t objects = 0;
    sprof_signals_hold_sampling(&old);
    dl_iterate_phdr(count_object, &objects);
    sprof_signals_release_sampling(&old);
    struct span_fill fill = {spans, objects + 16}; /* room for some loaded meanwhile */
    spans->spans = malloc(fill.capacity * sizeof *spans->spans);
    if (!spans->spans)
        return;
    sprof_signals_hold_sampling(&old);
    dl_iterate_phdr(add_span, &fill);
    sprof_signals_release_sampling(&old);
}

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#define MAX_RESERVED_SPANS 64
#define MAX_RESERVED_BYTES ((uint64_t)1 << 30)

static _Atomic unsigned reserved_spans;
static _Atomic uint64_t reserved_bytes;

static bool address_space_limited(void)
{
    struct rlimit limit;
    return getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY;
}

static void reserve_span(uintptr_t start, uintptr_t end)
{
    long page = sysconf(_SC_PAGESIZE);
    start &= ~(uintptr_t)(page - 1);
    end = (end + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    size_t size = end - start;
    /* Claimed before mapping (another thread may be reserving too), and
     * given back when no span was kept, so failures spend no budget. */
    bool within = atomic_fetch_add(&reserved_spans, 1) < MAX_RESERVED_SPANS;
    within = atomic_fetch_add(&reserved_bytes, size) + size <= MAX_RESERVED_BYTES && within;
    void *at = within ? mmap((void *)start, size, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                             -1, 0)
                      : MAP_FAILED;
    if (at == (void *)start)
        return;
    /* A kernel without MAP_FIXED_NOREPLACE takes the address as a hint. */
    if (at != MAP_FAILED)
        munmap(at, size);
    atomic_fetch_sub(&reserved_spans, 1);
    atomic_fetch_sub(&reserved_bytes, size);
}

static int clear_if_still_mapped(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct sprof_object_spans *before = data;
    uintptr_t start, end;
    if (!object_span(info, &start, &end))
        return 0;
    for (size_t i = 0; i < before->count; i++) {
        if (before->spans[i].bias == info->dlpi_addr && before->spans[i].start == start)
            before->spans[i].end = 0; /* still there */
    }
    return 0;
}

void sprof_object_spans_reserve_unmapped(struct sprof_object_spans *before)
{
    if (before->count > 0 && atomic_load(&sprof.active) && !address_space_limited()) {
        sigset_t old;
        sprof_signals_hold_sampling(&old);
        dl_iterate_phdr(clear_if_still_mapped, before);
        sprof_signals_release_sampling(&old);
        for (size_t i = 0; i < before->count; i++) {
            if (before->spans[i].end > before->spans[i].start)
                reserve_span(before->spans[i].start, before->spans[i].end);
        }
    }
    free(before->spans);
    before->spans = NULL;
    before->count = 0;
}

void sprof_module_list_free(struct sprof_module_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->modules[i].path);
    free(list->modules);
    memset(list, 0, sizeof *list);
}
