// Everything at once under a fast sampler (stress.py runs it at 4000 Hz):
// threads that allocate and free, throw and catch C++ exceptions (the
// unwinder of the exception and the sampler's unwinder at work on one
// thread), and dlopen and dlclose a library (code that comes and goes)
// that throws too, while the main thread starts threads that end at once.
// Any deadlock or crash here is the profiler's: the program alone has none.
//
// Usage: stress_threads LIBRARY [SECONDS [THREADS [no-dlopen]]]
//   (default 60 s, 16 threads; no-dlopen leaves the library alone)
// Every second it prints "progress SECONDS ROUNDS STALL": STALL is the
// longest time, in seconds, that a worker has gone without finishing a
// round, so that a watcher can tell a deadlock from slowness.
// Exit status 0 when every exception thrown was caught and every round ran.
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace
{

const char *library_path;
bool load_library = true;
std::atomic<bool> stop{false};
constexpr unsigned max_workers = 256;
std::atomic<std::uint64_t> worker_rounds[max_workers];
std::atomic<std::uint64_t> thrown{0}, caught{0}, rounds{0}, loads{0}, failures{0};
volatile std::uint64_t sink;

struct work_error : std::runtime_error {
    explicit work_error(std::uint64_t n) : std::runtime_error("work error " + std::to_string(n))
    {
    }
};

__attribute__((noinline)) std::uint64_t compute(std::uint64_t n)
{
    std::uint64_t x = n;
    for (int i = 0; i < 3000; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

// Throws from some depth, so that the unwinder walks several frames.
__attribute__((noinline)) std::uint64_t deep_throw(unsigned depth, std::uint64_t n)
{
    if (depth == 0) {
        thrown++;
        throw work_error(n);
    }
    std::vector<std::uint64_t> local(depth + 1, n);
    std::uint64_t r = deep_throw(depth - 1, n + local.back());
    sink += r;
    return r;
}

__attribute__((noinline)) void allocate(std::uint64_t seed)
{
    std::vector<std::unique_ptr<char[]>> blocks;
    for (int i = 0; i < 32; i++) {
        std::size_t size = 16 + (seed >> (i % 20)) % 65536;
        blocks.emplace_back(new char[size]);
        blocks.back()[0] = static_cast<char>(i);
        void *raw = std::malloc(size / 2 + 1);
        if (!raw) {
            failures++;
            continue;
        }
        std::memset(raw, i, size / 2 + 1);
        std::free(raw);
    }
    std::string text;
    for (int i = 0; i < 64; i++)
        text += std::to_string(seed + static_cast<std::uint64_t>(i));
    sink += text.size();
}

__attribute__((noinline)) void use_library(std::uint64_t n)
{
    void *library = dlopen(library_path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        std::fprintf(stderr, "stress_threads: dlopen %s: %s\n", library_path, dlerror());
        failures++;
        return;
    }
    loads++;
    auto work =
        reinterpret_cast<std::uint64_t (*)(std::uint64_t)>(dlsym(library, "stress_lib_work"));
    if (!work) {
        failures++;
    } else {
        for (std::uint64_t k = n; k < n + 3; k++) {
            try {
                if (k % 3 == 0)
                    thrown++;
                sink += work(k);
            } catch (const std::runtime_error &) {
                caught++;
            }
        }
    }
    dlclose(library);
}

void worker(unsigned index)
{
    std::uint64_t seed = 0x9e3779b97f4a7c15ull * (index + 1);
    while (!stop.load(std::memory_order_relaxed)) {
        seed = seed * 6364136223846793005ull + 1;
        sink += compute(seed);
        allocate(seed);
        try {
            deep_throw(static_cast<unsigned>(seed % 24), seed);
        } catch (const work_error &) {
            caught++;
        }
        if (load_library && seed % 4 == 0)
            use_library(seed >> 8);
        rounds++;
        worker_rounds[index]++;
    }
}

double elapsed_since(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: stress_threads LIBRARY [SECONDS [THREADS]]\n");
        return 2;
    }
    library_path = argv[1];
    double seconds = argc > 2 ? std::atof(argv[2]) : 60.0;
    unsigned count = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 16;
    if (count == 0 || count > max_workers)
        count = 16;
    load_library = !(argc > 4 && std::strcmp(argv[4], "no-dlopen") == 0);

    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < count; i++)
        threads.emplace_back(worker, i);
    unsigned churned = 0;
    std::vector<std::uint64_t> last_rounds(count, 0);
    std::vector<double> last_change(count, 0.0);
    double next_report = 1.0;
    while (elapsed_since(start) < seconds) {
        double now = elapsed_since(start);
        if (now >= next_report) {
            double stall = 0;
            for (unsigned i = 0; i < count; i++) {
                std::uint64_t r = worker_rounds[i].load();
                if (r != last_rounds[i]) {
                    last_rounds[i] = r;
                    last_change[i] = now;
                }
                if (now - last_change[i] > stall)
                    stall = now - last_change[i];
            }
            std::printf("progress %.0f %llu %.0f\n", now,
                        static_cast<unsigned long long>(rounds.load()), stall);
            std::fflush(stdout);
            next_report = now + 1.0;
        }
        // Threads that end at once: their profiler states are reused.
        std::thread brief([churned] {
            try {
                deep_throw(churned % 8, churned);
            } catch (const work_error &) {
                caught++;
            }
            allocate(churned);
        });
        brief.join();
        churned++;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stop = true;
    for (auto &t : threads)
        t.join();

    std::printf("stress_threads: %u threads, %.1f s: %llu rounds, %llu exceptions thrown, "
                "%llu caught, %llu loads, %u short-lived threads\n",
                count, elapsed_since(start), static_cast<unsigned long long>(rounds.load()),
                static_cast<unsigned long long>(thrown.load()),
                static_cast<unsigned long long>(caught.load()),
                static_cast<unsigned long long>(loads.load()), churned);
    if (thrown != caught || failures != 0 || rounds == 0) {
        std::fprintf(stderr, "stress_threads: %llu thrown but %llu caught, %llu failures\n",
                     static_cast<unsigned long long>(thrown.load()),
                     static_cast<unsigned long long>(caught.load()),
                     static_cast<unsigned long long>(failures.load()));
        return 1;
    }
    return 0;
}
