// The library stress_threads loads and unloads over and over: its code
// appears and disappears under the sampler, and it throws exceptions that
// its caller catches.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace
{

__attribute__((noinline)) std::uint64_t churn(std::uint64_t n)
{
    std::uint64_t x = n | 1;
    for (int i = 0; i < 2000; i++)
        x = x * 2862933555777941757ull + 3037000493ull;
    return x;
}

} // namespace

// Returns some work's result, or throws std::runtime_error for every third n.
extern "C" __attribute__((visibility("default"))) std::uint64_t stress_lib_work(std::uint64_t n)
{
    std::uint64_t result = churn(n);
    if (n % 3 == 0)
        throw std::runtime_error("thrown in the library, round " + std::to_string(n));
    return result;
}
