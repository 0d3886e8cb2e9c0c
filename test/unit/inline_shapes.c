/* Code inlined two deep, for test_inline_frames: outer_caller inlines
 * middle_step, which inlines inner_step; other_caller inlines inner_step
 * directly. Built with optimization and debug info whatever the build type. */
void outer_caller(unsigned n);
void other_caller(unsigned n);

static volatile unsigned sink;

static inline __attribute__((always_inline)) void inner_step(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sink += i * 3u;
}

static inline __attribute__((always_inline)) void middle_step(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sink ^= i;
    inner_step(n);
}

__attribute__((noinline, visibility("default"))) void outer_caller(unsigned n)
{
    sink += n;
    middle_step(n);
    sink -= 1u;
}

__attribute__((noinline, visibility("default"))) void other_caller(unsigned n)
{
    sink += 2u * n;
    inner_step(n);
    sink -= 2u;
}
