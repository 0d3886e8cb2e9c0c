// Built with -finstrument-functions: C++ exceptions thrown through
// instrumented frames. thrower(5) recurses 5 deep and throws from the
// bottom, 100 times: 600 calls, 100 primitive, however the unwinder runs
// the exit hooks. Then count_down(3), returning normally: 4 calls, 1
// primitive (a stale activation left by the throws would make it 0).
#include <cstdio>
#include <stdexcept>

static volatile int sink;

__attribute__((noinline)) static int thrower(int depth)
{
    if (depth == 0)
        throw std::runtime_error("bottom");
    int below = thrower(depth - 1);
    sink = sink + 1;
    return below + 1;
}

__attribute__((noinline)) static int count_down(int depth)
{
    int below = depth > 0 ? count_down(depth - 1) : 0;
    sink = sink + 1;
    return below + 1;
}

int main()
{
    int caught = 0;
    for (int i = 0; i < 100; i++) {
        try {
            thrower(5);
        } catch (const std::exception &) {
            caught++;
        }
    }
    std::printf("caught %d, count_down %d\n", caught, count_down(3));
    return caught == 100 ? 0 : 1;
}
