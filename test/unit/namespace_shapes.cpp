/* Functions defined inside namespaces, for test_inline_frames. clang writes
 * such a function's entry inside its namespace's entry, where libdw's own
 * search for the scopes of an address (dwarf_getscopes) does not look: they
 * were named from the symbol table, without their file and line. */
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
