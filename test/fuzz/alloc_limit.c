/* Linked into the programs that replay hostile inputs without libFuzzer:
 * any single allocation over 64 MB aborts the program, as libFuzzer's
 * -malloc_limit_mb=64 does in the fuzzer. A trace's size fields claim up
 * to 4 GB; none of them may be believed before it is checked.
 *
 * Under AddressSanitizer (a -Db_sanitize=address build) its own limit is
 * used; otherwise glibc's allocator is wrapped. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#define ALLOCATION_LIMIT_MB 64

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#endif

#if defined(UNDER_ASAN)

/* Options in ASAN_OPTIONS still apply after these. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "max_allocation_size_mb=64:allocator_may_return_null=0";
}

#elif defined(__GLIBC__)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *old, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static void too_big(void)
{
    static const char message[] = "alloc_limit: an allocation over 64 MB: a size from the "
                                  "input was believed\n";
    ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
    (void)ignored;
    abort();
}

#define LIMIT ((size_t)ALLOCATION_LIMIT_MB << 20)

void *malloc(size_t size)
{
    if (size > LIMIT)
        too_big();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total) || total > LIMIT)
        too_big();
    return __libc_calloc(count, size);
}

void *realloc(void *old, size_t size)
{
    if (size > LIMIT)
        too_big();
    return __libc_realloc(old, size);
}

/* The analyzer's large arrays are aligned for huge pages. */
int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (size > LIMIT)
        too_big();
    void *memory = __libc_memalign(alignment, size);
    if (!memory)
        return ENOMEM;
    *out = memory;
    return 0;
}

#endif
