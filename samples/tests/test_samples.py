#!/usr/bin/env python3
"""Tests of the sample programs (samples/*.c): slow and fast versions agree,
call counts are what the algorithms promise, bad input is refused, and the
profiles taken with libsprof show what the samples are meant to show.

Usage: test_samples.py --sum S --fib F --threads T --libsprof L --analyzer A TEST
Exit status: 0 passed, 1 failed (meson's convention).

No test asserts a time: the speed-ups are measured and shown by demo.sh.
"""
import argparse
import csv
import functools
import io
import os
import random
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test"))
from sanitizer_env import preload_settings  # noqa: E402

TESTS = {}
SUM_MAX_N = 6074001000
FIB_MAX_N = 93


class Failure(Exception):
    pass


def test(function):
    TESTS[function.__name__.replace("_", "-")] = function
    return function


def check(condition, message):
    if not condition:
        raise Failure(message)


def fib_exact(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Env:
    def __init__(self, args, workdir):
        self.sum = os.path.abspath(args.sum)
        self.fib = os.path.abspath(args.fib)
        self.threads = os.path.abspath(args.threads)
        self.lib = os.path.abspath(args.libsprof)
        self.analyzer = os.path.abspath(args.analyzer)
        self.workdir = workdir

    def run(self, argv, trace=None, timeout=120):
        """Runs argv; under the profiler when trace names a trace file."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SPROF_") and k != "LD_PRELOAD"}
        if trace:
            preload, sanitizer_env = preload_settings(self.lib)
            env.update(sanitizer_env)
            env.update(LD_PRELOAD=preload, SPROF_QUIET="1",
                       SPROF_OUTPUT=os.path.join(self.workdir, trace))
        return subprocess.run(argv, env=env, cwd=self.workdir, capture_output=True,
                              text=True, timeout=timeout)

    def run_ok(self, argv, trace=None, timeout=120):
        result = self.run(argv, trace=trace, timeout=timeout)
        check(result.returncode == 0,
              f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def analyze_csv(self, trace, *options):
        result = subprocess.run([self.analyzer, os.path.join(self.workdir, trace),
                                 "--format", "csv", *options],
                                capture_output=True, text=True, timeout=60)
        check(result.returncode == 0,
              f"sprof-analyze {' '.join(options)} exited {result.returncode}: {result.stderr}")
        return list(csv.DictReader(io.StringIO(result.stdout)))


def results(stdout, prefix):
    """{n: value} from lines 'PREFIX(n) = value'."""
    found = {}
    for line in stdout.splitlines():
        m = re.match(re.escape(prefix) + r"\((\d+)\) = (\d+)\b", line)
        if m:
            n, value = int(m.group(1)), int(m.group(2))
            check(found.get(n, value) == value, f"two values for {prefix}({n}): {stdout}")
            found[n] = value
    return found


def counts(stdout, prefix):
    """{n: (calls, misses|None, hits|None, evictions|None)} from --count-calls lines."""
    found = {}
    for line in stdout.splitlines():
        m = re.match(re.escape(prefix) + r"\((\d+)\) calls = (\d+)"
                     r"(?: \(cache misses (\d+), hits (\d+), evictions (\d+))?", line)
        if m:
            found[int(m.group(1))] = tuple(int(g) if g is not None else None
                                           for g in m.groups()[1:])
    return found


# ---- slow and fast agree ----

@test
def sum_slow_fast_agree(env):
    """inefficient_sum, loop_sum and closed_form_sum agree with Python's sum
    over a range of n, including 0, 1 and the largest valid n."""
    ns = [0, 1, 2, 3, 7, 10, 100, 1000, 65536, 123457, 10**6, 3 * 10**6 + 1]
    for n in ns:
        slow = results(env.run_ok([env.sum, "--mode", "slow", str(n)]).stdout, "inefficient_sum")
        fast = env.run_ok([env.sum, "--mode", "fast", str(n)]).stdout
        both = env.run_ok([env.sum, "--mode", "both", str(n)]).stdout
        want = n * (n - 1) // 2
        for label, got in [("slow", slow), ("fast loop", results(fast, "loop_sum")),
                           ("fast closed form", results(fast, "closed_form_sum")),
                           ("both", results(both, "inefficient_sum"))]:
            check(got == {n: want}, f"sum {label} n={n}: got {got}, want {want}")
    # The default n is the seed's 10**6.
    default = env.run_ok([env.sum, "--mode", "fast"]).stdout
    check(results(default, "loop_sum") == {10**6: 499999500000}, f"default n: {default}")
    # The largest valid n: the sum is just below 2**64. The slow mode's array
    # (8 bytes a number, 45 GiB) is out of reach, so it is the two fast
    # methods that are checked there, both against Python's exact integer.
    max_n = int(env.run_ok([env.sum, "--max-n"]).stdout)
    check(max_n == SUM_MAX_N, f"--max-n says {max_n}, want {SUM_MAX_N}")
    check(max_n * (max_n - 1) // 2 < 2**64 <= (max_n + 1) * max_n // 2,
          "SUM_MAX_N is not the bound")
    out = env.run_ok([env.sum, "--mode", "fast", str(max_n)], timeout=300).stdout
    want = max_n * (max_n - 1) // 2
    check(results(out, "loop_sum") == {max_n: want}, f"loop_sum at max n: {out}")
    check(results(out, "closed_form_sum") == {max_n: want}, f"closed form at max n: {out}")
    # --repeat repeats, and says so.
    out = env.run_ok([env.sum, "--mode", "both", "--repeat", "3", "1000"]).stdout
    check("computed 3 times" in out and results(out, "inefficient_sum") == {1000: 499500},
          f"--repeat 3: {out}")


@test
def fib_slow_fast_agree(env):
    """fib_naive and fib_memo agree with Python for 0..30; fib_memo is exact
    up to the largest valid n, 93."""
    ns = list(range(0, 31))
    out = env.run_ok([env.fib, "--mode", "both"] + [str(n) for n in ns]).stdout
    naive, memo = results(out, "fib_naive"), results(out, "fib_memo")
    want = {n: fib_exact(n) for n in ns}
    check(naive == want, f"fib_naive: {naive}")
    check(memo == want, f"fib_memo: {memo}")
    slow = results(env.run_ok([env.fib, "--mode", "slow", "0", "1", "2", "25"]).stdout,
                   "fib_naive")
    check(slow == {n: fib_exact(n) for n in (0, 1, 2, 25)}, f"--mode slow: {slow}")
    # Naive fib(93) would take centuries: the fast mode covers the top. With
    # fewer than 3 entries the LRU table cannot hold fib(n-1), fib(n-2) and
    # the result, and the recursion stays exponential (as with Python's
    # lru_cache(maxsize=2)): those sizes get small n only.
    for cache_size in ("128", "3", "2", "1", "0"):
        top = list(range(60, FIB_MAX_N + 1)) if int(cache_size) >= 3 else [0, 1, 2, 20]
        out = env.run_ok([env.fib, "--mode", "fast", "--cache-size", cache_size]
                         + [str(n) for n in top]).stdout
        got = results(out, "fib_memo")
        check(got == {n: fib_exact(n) for n in top}, f"fib_memo cache {cache_size}: {got}")
    check(fib_exact(FIB_MAX_N) < 2**64 <= fib_exact(FIB_MAX_N + 1), "FIB_MAX_N is not the bound")


@test
def threads_slow_fast_agree(env):
    """The serial run and the pool give the same results, with both the
    naive and the memoized function (one LRU cache shared by the workers)."""
    cases = [
        ["--fn", "naive", "--first", "0", "--last", "25"],
        ["--fn", "naive", "--first", "0", "--last", "0"],
        ["--fn", "naive", "--first", "20", "--last", "23", "--workers", "1"],
        ["--fn", "memo", "--first", "0", "--last", str(FIB_MAX_N)],
        ["--fn", "memo", "--first", str(FIB_MAX_N), "--last", str(FIB_MAX_N)],
        # Many workers on one cache: much locking.
        ["--fn", "memo", "--first", "0", "--last", str(FIB_MAX_N), "--workers", "16"],
        # Tiny caches: much eviction, by the other threads too. (A shared
        # 3-entry table thrashes between threads, and below 3 entries the
        # recursion is exponential anyway, so n stays small.)
        ["--fn", "memo", "--first", "0", "--last", "27", "--workers", "8",
         "--cache-size", "3"],
        ["--fn", "memo", "--first", "0", "--last", "22", "--workers", "4",
         "--cache-size", "1"],
    ]
    for case in cases:
        first, last = int(case[case.index("--first") + 1]), int(case[case.index("--last") + 1])
        want = {n: fib_exact(n) for n in range(first, last + 1)}
        serial = results(env.run_ok([env.threads, "--mode", "slow"] + case).stdout, "fib")
        pool = results(env.run_ok([env.threads, "--mode", "fast"] + case).stdout, "fib")
        both = env.run_ok([env.threads, "--mode", "both"] + case).stdout
        check(serial == want, f"serial {case}: {serial}")
        check(pool == want, f"pool {case}: {pool}")
        check(results(both, "fib") == want, f"both {case}: {both}")
    # Repeated runs of the contended shared cache, to give races a chance.
    for _ in range(20):
        for last, size in ((FIB_MAX_N, "128"), (25, "3")):
            out = env.run_ok([env.threads, "--mode", "fast", "--fn", "memo", "--first", "0",
                              "--last", str(last), "--workers", "8", "--cache-size", size]).stdout
            check(results(out, "fib") == {n: fib_exact(n) for n in range(last + 1)},
                  f"contended memo pool (cache {size}): {out}")


# ---- call counts ----

@test
def fib_call_counts(env):
    """Naive fib(22) makes exactly 57313 calls (2*fib(n+1)-1 in general);
    memoized fib(n) makes at most 2n+1."""
    out = env.run_ok([env.fib, "--mode", "slow", "--count-calls", "22"]).stdout
    check(counts(out, "fib_naive").get(22, (None,))[0] == 57313,
          f"naive fib(22) should make 57313 calls: {out}")
    ns = list(range(0, 26))
    out = env.run_ok([env.fib, "--mode", "slow", "--count-calls"] + [str(n) for n in ns]).stdout
    got = counts(out, "fib_naive")
    for n in ns:
        check(got.get(n, (None,))[0] == 2 * fib_exact(n + 1) - 1,
              f"naive fib({n}) calls {got.get(n)}, want {2 * fib_exact(n + 1) - 1}")
    ns = list(range(0, FIB_MAX_N + 1))
    out = env.run_ok([env.fib, "--mode", "fast", "--count-calls"] + [str(n) for n in ns]).stdout
    got = counts(out, "fib_memo")
    check(sorted(got) == ns, f"memo counts missing: {sorted(got)}")
    for n in ns:
        calls = got[n][0]
        check(1 <= calls <= 2 * n + 1, f"memo fib({n}) made {calls} calls, more than 2n+1")
    # Repeating does not change the per-computation count (empty cache each time).
    out = env.run_ok([env.fib, "--mode", "both", "--count-calls", "--repeat", "3", "22"]).stdout
    check(counts(out, "fib_naive")[22][0] == 57313, f"--repeat changed the count: {out}")
    check(counts(out, "fib_memo")[22][0] <= 45, f"--repeat changed the memo count: {out}")


def python_lru_counts(n, maxsize):
    """Calls, misses, hits of Python's own lru_cache for the seed's fibonacci."""
    calls = 0

    def fibonacci(k):
        nonlocal calls
        calls += 1
        return cached(k)

    @functools.lru_cache(maxsize=maxsize)
    def cached(k):
        if k in (0, 1):
            return k
        return fibonacci(k - 1) + fibonacci(k - 2)

    value = fibonacci(n)
    info = cached.cache_info()
    return value, calls, info.misses, info.hits


def python_lru_sequence(ns, maxsize):
    """Per call of fibonacci(n) for n in ns, one lru_cache kept throughout:
    (n, calls, misses, hits, evictions) of that call."""
    calls = 0

    def fibonacci(k):
        nonlocal calls
        calls += 1
        return cached(k)

    @functools.lru_cache(maxsize=maxsize)
    def cached(k):
        if k in (0, 1):
            return k
        return fibonacci(k - 1) + fibonacci(k - 2)

    rows = []
    for n in ns:
        calls_before, before = calls, cached.cache_info()
        fibonacci(n)
        after = cached.cache_info()
        misses = after.misses - before.misses
        grown = after.currsize - before.currsize
        rows.append((n, calls - calls_before, misses, after.hits - before.hits, misses - grown))
    return rows


@test
def fib_lru_matches_python(env):
    """The bounded LRU table behaves as functools.lru_cache(maxsize=K): the
    same number of calls, misses and hits, for several K (evictions when small)."""
    for size in (0, 1, 2, 3, 4, 5, 8, 128):
        # Below 3 entries the recursion stays exponential: small n only.
        ns = [0, 1, 2, 3, 5, 10, 20] + ([] if size < 3 else [40, 70, FIB_MAX_N])
        out = env.run_ok([env.fib, "--mode", "fast", "--count-calls", "--cache-size", str(size)]
                         + [str(n) for n in ns]).stdout
        got = counts(out, "fib_memo")
        values = results(out, "fib_memo")
        for n in ns:
            value, calls, misses, hits = python_lru_counts(n, size)
            check(values.get(n) == value, f"cache {size}: fib_memo({n}) = {values.get(n)}")
            check(got.get(n, (None,) * 4)[:3] == (calls, misses, hits),
                  f"cache {size}, n={n}: C calls/misses/hits {got.get(n)}, "
                  f"Python lru_cache {(calls, misses, hits)}")
            evictions = got[n][3]
            check(evictions == (max(0, misses - size) if size else 0),
                  f"cache {size}, n={n}: {evictions} evictions for {misses} misses")
    # A cache kept from call to call (--keep-cache), in a random order of n:
    # here a hit must refresh an entry (least *recently used*, not oldest
    # inserted), and the counts of each call must still match Python's.
    rng = random.Random(20240601)
    for size in (1, 2, 3, 4, 5, 8, 20):
        top = 14 if size < 3 else 40
        ns = [rng.randint(0, top) for _ in range(60)]
        out = env.run_ok([env.fib, "--mode", "fast", "--count-calls", "--keep-cache",
                          "--cache-size", str(size)] + [str(n) for n in ns]).stdout
        got = [tuple(int(g) for g in m.groups()) for m in re.finditer(
            r"^fib_memo\((\d+)\) calls = (\d+) \(cache misses (\d+), hits (\d+), "
            r"evictions (\d+)", out, re.M)]
        want = python_lru_sequence(ns, size)
        check(len(got) == len(ns), f"keep-cache, size {size}: {len(got)} count lines for {len(ns)}")
        for k, (g, w) in enumerate(zip(got, want)):
            check(g == w, f"keep-cache, size {size}, call #{k} fib({ns[k]}): C (n, calls, "
                          f"misses, hits, evictions) {g}, Python lru_cache {w}")


# ---- bad input ----

@test
def invalid_input(env):
    """Negative numbers, non-numbers and n past the 64-bit bound exit non-zero
    with a message on stderr naming the problem, and print no result."""
    bad_common = [("-1", "negative"), ("-100", "negative"), ("abc", "not an integer"),
                  ("", "empty"), ("3.5", "not an integer"), ("12x", "not an integer"),
                  (" 7", "not an integer"), ("0x10", "not an integer"), ("-", "not an integer"),
                  ("99999999999999999999999", "too large")]
    cases = []
    for text, why in bad_common:
        cases.append(([env.sum, "--mode", "fast", text], why))
        cases.append(([env.sum, "--mode", "slow", text], why))
        cases.append(([env.fib, "--mode", "slow", text], why))
        cases.append(([env.fib, "--mode", "fast", text], why))
        cases.append(([env.threads, "--first", text, "--last", "5"], why))
        cases.append(([env.threads, "--first", "1", "--last", text], why))
    cases += [
        ([env.sum, str(SUM_MAX_N + 1)], "overflow"),
        ([env.sum, "--mode", "slow", str(SUM_MAX_N + 1)], "overflow"),
        ([env.sum, str(2**64 - 1)], "overflow"),
        ([env.fib, "--mode", "fast", "94"], "overflow"),
        ([env.fib, "--mode", "slow", "94"], "overflow"),
        ([env.fib, "--mode", "fast", "5", "94"], "overflow"),
        ([env.fib, "--mode", "fast", "1000"], "overflow"),
        ([env.threads, "--fn", "memo", "--first", "90", "--last", "94"], "overflow"),
        ([env.threads, "--first", "5", "--last", "3"], "greater than"),
        ([env.threads, "--workers", "0", "--first", "1", "--last", "2"], "--workers"),
        ([env.threads, "--workers", "x", "--first", "1", "--last", "2"], "--workers"),
        ([env.fib, "--cache-size", "129", "5"], "--cache-size"),
        ([env.fib, "--cache-size", "-1", "5"], "--cache-size"),
        ([env.sum, "--repeat", "0", "5"], "--repeat"),
        ([env.fib, "--mode", "quick", "5"], "--mode"),
        ([env.sum, "--bogus"], "unknown option"),
        ([env.fib, "--mode"], "needs a value"),
        ([env.sum, "1", "2"], "only one"),
    ]
    for argv, why in cases:
        result = env.run(argv, timeout=30)
        shown = " ".join(repr(a) for a in argv[1:])
        check(result.returncode != 0, f"{shown} was accepted: {result.stdout!r}")
        check(result.stderr.strip(), f"{shown} failed without a message")
        check(why in result.stderr.replace("\n", " ") or
              (why == "overflow" and "overflow" in result.stderr),
              f"{shown}: message does not say {why!r}: {result.stderr.strip()!r}")
        check(not re.search(r"^\w+\(\d+\) = ", result.stdout, re.M),
              f"{shown} printed a result: {result.stdout!r}")
    # And the message names the bound.
    msg = env.run([env.fib, "94"]).stderr
    check("93" in msg, f"fib 94 should name the largest valid n: {msg!r}")
    msg = env.run([env.sum, str(SUM_MAX_N + 1)]).stderr
    check(str(SUM_MAX_N) in msg, f"sum should name the largest valid n: {msg!r}")


# ---- what the profiles show ----

@test
def fib_profile_top_self(env):
    """Under the profiler, the slow fib's profile names the recursive
    function as the top entry by self time."""
    env.run_ok([env.fib, "--mode", "slow", "--repeat", "4", "33"], trace="fib.bin")
    rows = env.analyze_csv("fib.bin", "--sort", "self")
    check(rows, "the profile is empty")
    top = rows[0]
    check(top["function"] == "fib_naive",
          f"top by self time is {top['function']!r}, not fib_naive: "
          f"{[(r['function'], r['self_samples']) for r in rows[:5]]}")
    total = sum(int(r["self_samples"]) for r in rows)
    check(int(top["self_samples"]) >= 10 and int(top["self_samples"]) * 2 > total,
          f"fib_naive has {top['self_samples']} of {total} samples")


@test
def sum_profile_names_steps(env):
    """The slow sum's profile names its grow step and its summing loop."""
    env.run_ok([env.sum, "--mode", "slow", "--repeat", "3", "3000000"], trace="sum.bin")
    rows = {r["function"]: r for r in env.analyze_csv("sum.bin", "--sort", "cumulative")}
    for name in ("inefficient_sum", "grow_list", "list_append", "sum_list"):
        check(name in rows and int(rows[name]["cumulative_samples"]) > 0,
              f"{name} missing from the slow sum's profile: {sorted(rows)}")
    check(int(rows["grow_list"]["cumulative_samples"]) <=
          int(rows["inefficient_sum"]["cumulative_samples"]),
          "grow_list has more samples than its caller")


@test
def threads_profile_four_workers(env):
    """The pool's trace shows work on at least 4 threads, the named workers."""
    # Eight tasks for four workers: a worker that starts late on a busy
    # machine still finds one left (with four, the others could take all).
    out = env.run_ok([env.threads, "--mode", "fast", "--first", "30", "--last", "37"],
                     trace="pool.bin").stdout
    for k in range(4):
        check(re.search(rf"^# fib-worker-{k}: [1-9]\d* tasks?,", out, re.MULTILINE),
              f"fib-worker-{k} took no task (the test needs each worker busy): {out}")
    rows = env.analyze_csv("pool.bin", "--threads")
    working = [r for r in rows if int(r["samples"]) > 0]
    check(len(working) >= 4, f"only {len(working)} threads with samples: {rows}")
    names = sorted(r["name"] for r in working if r["name"].startswith("fib-worker-"))
    check(names == [f"fib-worker-{k}" for k in range(4)],
          f"the workers' names are not in the trace: {[r['name'] for r in rows]}")


@test
def threads_worker_failure(env):
    """A task that fails in a worker is reported by the main thread, naming
    the worker and the task, and the exit status is non-zero."""
    result = env.run([env.threads, "--mode", "fast", "--first", "20", "--last", "23",
                      "--fail", "22"])
    check(result.returncode != 0, f"the failure was lost: exit 0, {result.stdout!r}")
    check(re.search(r"worker fib-worker-\d+ failed: fib\(22\) failed", result.stderr),
          f"the message does not name the worker and the task: {result.stderr!r}")
    done = results(result.stdout, "fib")
    check(done == {20: 6765, 21: 10946, 23: 28657},
          f"the other tasks should still be done by the other workers: {done}")
    # One worker: it fails, so the tasks after it are reported as not done.
    result = env.run([env.threads, "--mode", "fast", "--workers", "1", "--first", "20",
                      "--last", "23", "--fail", "21"])
    check(result.returncode != 0, "single-worker failure lost")
    check("fib-worker-0 failed" in result.stderr and "fib(22) was not computed" in result.stderr,
          f"single worker: {result.stderr!r}")
    # The serial run reports it too; a run without --fail is clean.
    result = env.run([env.threads, "--mode", "slow", "--first", "20", "--last", "23",
                      "--fail", "23"])
    check(result.returncode != 0 and "fib(23) failed" in result.stderr,
          f"serial failure: {result.returncode} {result.stderr!r}")
    env.run_ok([env.threads, "--mode", "both", "--first", "20", "--last", "23"])
    # The memo pairing reports failures the same way.
    result = env.run([env.threads, "--mode", "fast", "--fn", "memo", "--first", "40",
                      "--last", "50", "--fail", "45"])
    check(result.returncode != 0 and "fib(45) failed" in result.stderr,
          f"memo pool failure: {result.returncode} {result.stderr!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("test", choices=sorted(TESTS))
    for name in ("sum", "fib", "threads", "libsprof", "analyzer"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sprof-samples-") as workdir:
        try:
            TESTS[args.test](Env(args, workdir))
        except Failure as failure:
            print(f"FAIL {args.test}: {failure}", file=sys.stderr)
            return 1
        except subprocess.TimeoutExpired as timeout:
            print(f"FAIL {args.test}: timed out: {timeout}", file=sys.stderr)
            return 1
    print(f"ok {args.test}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
