/* C++ shapes for test_inline_frames. A function defined inside namespaces:
 * clang writes its entry inside its namespace's entry, where libdw's own
 * search for the scopes of an address (dwarf_getscopes) does not look, so
 * it was named from the symbol table, without its file and line. And a
 * template instance for a lambda: g++ gives its entry no linkage name (the
 * lambda's type has none), only "apply_twice<...>", so it is named by its
 * mangled symbol, which demangles whole. */
namespace outer_space {
namespace inner_space {

static volatile unsigned sink;

__attribute__((noinline)) void namespaced_work(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sink += i * 5u;
}

} // namespace inner_space
} // namespace outer_space

extern "C" __attribute__((visibility("default"))) void namespaced_entry(unsigned n)
{
    outer_space::inner_space::namespaced_work(n);
}

template <class F> __attribute__((noinline)) unsigned apply_twice(F f, unsigned n)
{
    return f(f(n)) + n;
}

extern "C" __attribute__((visibility("default"))) unsigned lambda_entry(unsigned n)
{
    return apply_twice([](unsigned x) { return x * 7u + 1u; }, n);
}
