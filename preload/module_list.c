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
    struct sprof_encoder *enc;
    bool counters_checked; /* the loader's counters were looked at */
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

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    struct scan *scan = data;
    struct sprof_module_list *list = scan->list;
    if (!scan->counters_checked &&
        size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        scan->counters_checked = true;
        if (list->scanned && info->dlpi_adds == list->seen_adds &&
            info->dlpi_subs == list->seen_subs)
            return 1;
        list->seen_adds = info->dlpi_adds;
        list->seen_subs = info->dlpi_subs;
    }
    uint64_t start = UINT64_MAX, end = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t low = info->dlpi_addr + ph->p_vaddr;
        if (low < start)
            start = low;
        if (low + ph->p_memsz > end)
            end = low + ph->p_memsz;
    }
    if (start >= end || already_recorded(list, info->dlpi_name, info->dlpi_addr, start))
        return 0;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 32;
        struct sprof_module *modules = realloc(list->modules, capacity * sizeof *modules);
        if (!modules)
            return 1;
        list->modules = modules;
        list->capacity = capacity;
    }
    struct sprof_module *m = &list->modules[list->count];
    memset(m, 0, sizeof *m);
    m->path = module_path(info->dlpi_name, &m->has_file);
    if (!m->path)
        return 1;
    m->id = (uint32_t)list->count;
    m->load_bias = info->dlpi_addr;
    m->start = start;
    m->end = end;
    read_build_id(info, m);
    list->count++;
    write_module_record(scan->enc, m);
    return 0;
}

void sprof_module_list_update(struct sprof_module_list *list, struct sprof_encoder *enc)
{
    struct scan scan = {.list = list, .enc = enc};
    /* With the sampling signal blocked: a sample taken inside the loader's
     * lock could make libunwind call into the loader again, and hang. */
    sigset_t old;
    sprof_signals_hold_sampling(&old);
    dl_iterate_phdr(visit, &scan);
    sprof_signals_release_sampling(&old);
    list->scanned = true;
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

static int add_span(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct sprof_object_spans *spans = data;
    uintptr_t start, end;
    if (!object_span(info, &start, &end))
        return 0;
    struct sprof_object_span *grown =
        realloc(spans->spans, (spans->count + 1) * sizeof *spans->spans);
    if (!grown)
        return 1;
    spans->spans = grown;
    spans->spans[spans->count++] = (struct sprof_object_span){info->dlpi_addr, start, end};
    return 0;
}

void sprof_object_spans_take(struct sprof_object_spans *spans)
{
    spans->count = 0;
    spans->spans = NULL;
    if (!atomic_load(&sprof.active))
        return;
    sigset_t old;
    sprof_signals_hold_sampling(&old);
    dl_iterate_phdr(add_span, spans);
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
    if (atomic_fetch_add(&reserved_spans, 1) >= MAX_RESERVED_SPANS ||
        atomic_fetch_add(&reserved_bytes, size) + size > MAX_RESERVED_BYTES)
        return;
    void *at = mmap((void *)start, size, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    /* A kernel without MAP_FIXED_NOREPLACE takes the address as a hint. */
    if (at != MAP_FAILED && at != (void *)start)
        munmap(at, size);
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
